"""Optuna's journal on a real Redis server: the lock's renewal, messages, and worker processes.

Set HPO_TEST_REDIS_URL (default redis://127.0.0.1:6379/15); CI does, with
HPO_REQUIRE_REDIS=1 so that a missing server fails instead of skipping.
Studies get unique names and are deleted afterwards; nothing else is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import redis
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages import display_url, open_storage
from hpo.storages.redis import redis_lock

REPO = Path(__file__).parents[3]
# Workers in lockstep: all ask for their next trial at the same instants, so
# a missing or broken study lock shows as 9 trials (3 x 3) or duplicate points.
STUDY = """
name: NAME
objective:
  _target_: tests.hpo.helpers.LockstepObjective
  barrier: BARRIER
  parties: PARTIES
data: breast_cancer
cv: {scheme: holdout}
metric: roc_auc
n_trials: 7
space:
  x: {type: float, low: 0.0, high: 1.0, grid: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]}
"""


def test_unreachable_redis_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError, match=r"cannot open storage .*check storage\.url") as err:
        open_storage(StorageConfig(url="redis://:canarypw@127.0.0.1:1/0"))
    assert "canarypw" not in str(err.value)
    assert "127.0.0.1:1" in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://worker:s3cret@cache:6380/2", "rediss://worker:***@cache:6380/2"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redis_urls_are_shown_without_the_password(url: str, shown: str) -> None:
    assert mask(url) == shown
    assert display_url(StorageConfig(url=url)) == shown


@pytest.mark.redis
def test_redis_lock_is_renewed_while_held_past_its_ttl(redis_url: str, redis_study: str) -> None:
    """Seen renewed (its TTL reset upwards) and still held, not merely not yet expired."""
    client = redis.Redis.from_url(redis_url)
    key = f"hpo:lock:{redis_study}"
    with redis_lock(client, key, ttl=3.0):
        first = client.pttl(key)
        renewed = client.pttl(key)
        while renewed <= first:  # the renewal thread resets the TTL every second
            first, renewed = renewed, client.pttl(key)
        assert not client.lock(key, timeout=1).acquire(blocking=False)
    assert client.lock(key, timeout=1).acquire(blocking=False), "released at the end"
    client.delete(key)


def start_workers(
    tmp_path: Path, url: str, name: str, n: int, *args: str
) -> list[subprocess.Popen[str]]:
    studies = tmp_path / "studies"
    studies.mkdir(exist_ok=True)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    study = STUDY.replace("NAME", name).replace("BARRIER", str(barrier))
    (studies / "tiny_redis.yaml").write_text(study.replace("PARTIES", str(n)))
    env = {**os.environ, "HPO_REDIS_URL": url, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "hpo",
        "study=tiny_redis",
        "storage=redis",
        "pruner=none",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        "progress=false",
        *args,
    ]
    return [
        subprocess.Popen(command, cwd=tmp_path, env=env, text=True, stderr=subprocess.PIPE)
        for _ in range(n)
    ]


def wait_all(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr


@pytest.mark.redis
@pytest.mark.slow
def test_three_workers_on_redis_meet_the_budget_exactly(
    tmp_path: Path, redis_url: str, redis_study: str
) -> None:
    wait_all(start_workers(tmp_path, redis_url, redis_study, 3))

    study = optuna.load_study(
        study_name=redis_study, storage=open_storage(StorageConfig(redis_url))
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 7
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(redis_study)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1, "one parent run, however many workers started at once"
    pids = {r.data.tags["hpo.pid"] for r in runs if "hpo.trial" in r.data.tags}
    assert len(pids) > 1, "the trials were shared between workers"


@pytest.mark.redis
@pytest.mark.slow
def test_three_workers_on_redis_never_evaluate_a_grid_point_twice(
    tmp_path: Path, redis_url: str, redis_study: str
) -> None:
    wait_all(
        start_workers(tmp_path, redis_url, redis_study, 3, "sampler=grid", "tracking.enabled=false")
    )

    study = optuna.load_study(
        study_name=redis_study, storage=open_storage(StorageConfig(redis_url))
    )
    points = sorted(t.params["x"] for t in study.trials)
    assert points == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "each of the 7 grid points once"
