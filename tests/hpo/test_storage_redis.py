"""Optuna's journal storage on a real Redis server: round trip, lock, and worker processes.

Set HPO_TEST_REDIS_URL (default redis://127.0.0.1:6379/15); CI does, with
HPO_REQUIRE_REDIS=1 so that a missing server fails instead of skipping.
Studies get unique names and are deleted afterwards; nothing else is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import redis
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storage import display_url, is_outage, mask, open_storage, redis_lock, study_lock

REPO = Path(__file__).parents[2]
REDIS_URL = os.environ.get("HPO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
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

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as err:
        if os.environ.get("HPO_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis server at HPO_TEST_REDIS_URL ({err})")
    return REDIS_URL


@pytest.fixture
def study_name(redis_url: str) -> Iterator[str]:
    """A unique study name, deleted from the Redis journal afterwards."""
    name = f"hpo_test_{uuid.uuid4().hex[:10]}"
    yield name
    storage = open_storage(StorageConfig(url=redis_url))
    if name in {s.study_name for s in storage.get_all_studies()}:
        optuna.delete_study(study_name=name, storage=storage)


# --- open_storage, URLs ----------------------------------------------------------


def test_redis_storage_round_trip(redis_url: str, study_name: str) -> None:
    storage = open_storage(StorageConfig(url=redis_url))
    assert isinstance(storage, JournalStorage)
    study = optuna.create_study(study_name=study_name, storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=3)

    again = optuna.load_study(study_name=study_name, storage=open_storage(StorageConfig(redis_url)))
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 3


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


def test_a_lost_redis_connection_is_an_outage_to_wait_out() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError) as err:
        client.ping()
    assert is_outage(err.value)
    assert not is_outage(redis.ResponseError("WRONGTYPE"))


# --- heartbeats -------------------------------------------------------------------


def test_a_trial_whose_heartbeat_stopped_is_failed_and_retried_from_anywhere(
    redis_url: str, study_name: str
) -> None:
    """What a worker on another machine sees when this one dies: no pid to check, only Redis."""
    cfg = StorageConfig(url=redis_url, heartbeat_interval=1, grace_period=1, max_retry=1)
    storage = open_storage(cfg)
    assert is_heartbeat_enabled(storage)
    study = optuna.create_study(study_name=study_name, storage=storage)
    dead, alive = study.ask(), study.ask()
    dead.suggest_float("x", 0, 1)
    for trial in (dead, alive):
        storage.record_heartbeat(trial._trial_id)
    time.sleep(1.6)
    storage.record_heartbeat(alive._trial_id)  # this one's worker is still beating

    elsewhere = optuna.load_study(study_name=study_name, storage=open_storage(cfg))
    optuna.storages.fail_stale_trials(elsewhere)

    states = [t.state for t in elsewhere.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    retry = elsewhere.trials[2]
    assert retry.params == dead.params, "the same parameters are run again"
    assert retry.system_attrs["failed_trial"] == dead.number


def test_a_trial_without_a_heartbeat_yet_is_not_stale(redis_url: str, study_name: str) -> None:
    cfg = StorageConfig(url=redis_url, heartbeat_interval=1, grace_period=1)
    storage = open_storage(cfg)
    study = optuna.create_study(study_name=study_name, storage=storage)
    study.ask()
    time.sleep(1.2)
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]


# --- the study lock ---------------------------------------------------------------


def test_study_lock_on_redis_is_exclusive_across_storage_objects(
    redis_url: str, study_name: str
) -> None:
    acquired, release = threading.Event(), threading.Event()

    def contender() -> None:
        with study_lock(open_storage(StorageConfig(url=redis_url)), study_name):
            acquired.set()
            release.wait(10)

    with study_lock(open_storage(StorageConfig(url=redis_url)), study_name):
        thread = threading.Thread(target=contender, daemon=True)
        thread.start()
        assert not acquired.wait(0.5), "a second holder got the lock while it was held"
    assert acquired.wait(5), "the lock was not handed over after release"
    release.set()
    thread.join(5)


def test_redis_lock_is_renewed_while_held_past_its_ttl(redis_url: str, study_name: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"hpo:lock:{study_name}"
    with redis_lock(client, key, ttl=0.4):
        time.sleep(1.2)  # three TTLs: without renewal the lock would have expired
        assert not client.lock(key, timeout=1).acquire(blocking=False)
    assert client.lock(key, timeout=1).acquire(blocking=False), "released at the end"
    client.delete(key)


# --- worker processes -------------------------------------------------------------


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


@pytest.mark.slow
def test_three_workers_on_redis_meet_the_budget_exactly(
    tmp_path: Path, redis_url: str, study_name: str
) -> None:
    wait_all(start_workers(tmp_path, redis_url, study_name, 3))

    study = optuna.load_study(study_name=study_name, storage=open_storage(StorageConfig(redis_url)))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 7
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(study_name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1, "one parent run, however many workers started at once"
    pids = {r.data.tags["hpo.pid"] for r in runs if "hpo.trial" in r.data.tags}
    assert len(pids) > 1, "the trials were shared between workers"


@pytest.mark.slow
def test_three_workers_on_redis_never_evaluate_a_grid_point_twice(
    tmp_path: Path, redis_url: str, study_name: str
) -> None:
    wait_all(
        start_workers(tmp_path, redis_url, study_name, 3, "sampler=grid", "tracking.enabled=false")
    )

    study = optuna.load_study(study_name=study_name, storage=open_storage(StorageConfig(redis_url)))
    points = sorted(t.params["x"] for t in study.trials)
    assert points == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "each of the 7 grid points once"
