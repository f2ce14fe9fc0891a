"""Several worker processes on one study through a real PostgreSQL server.

Set HPO_TEST_PG_URL (a server where databases may be created); CI does, with
HPO_REQUIRE_POSTGRES=1 so that a missing server fails instead of skipping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

REPO = Path(__file__).parents[2]
PG_URL = os.environ.get("HPO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STUDY = """
name: tiny_pg
objective: {_target_: tests.hpo.helpers.PriorObjective, sleep: SLEEP}
data: breast_cancer
cv: {scheme: kfold, n_splits: 2}
metric: roc_auc
n_trials: 12
space:
  x: {type: float, low: 0.0, high: 1.0}
"""

pytestmark = pytest.mark.postgres


@pytest.fixture
def database() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    name = f"hpo_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        if os.environ.get("HPO_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL server at HPO_TEST_PG_URL ({err})")
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_workers(
    tmp_path: Path, url: str, n: int, *args: str, sleep: float = 0.0
) -> list[subprocess.Popen[str]]:
    studies = tmp_path / "studies"
    studies.mkdir(exist_ok=True)
    (studies / "tiny_pg.yaml").write_text(STUDY.replace("SLEEP", str(sleep)))
    env = {**os.environ, "HPO_STORAGE_URL": url, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "hpo",
        "study=tiny_pg",
        "storage=postgres",
        "pruner=none",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        "progress=false",
        *args,
    ]
    return [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]


def load(url: str) -> optuna.Study:
    storage = url.replace("postgresql://", "postgresql+psycopg://", 1)
    return optuna.load_study(study_name="tiny_pg", storage=storage)


def mlflow_runs(tmp_path: Path) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny_pg")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.mark.slow
def test_workers_started_together_on_an_empty_database_meet_the_budget_exactly(
    tmp_path: Path, database: str
) -> None:
    workers = start_workers(tmp_path, database, 4)
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert "already exists" not in stderr

    study = load(database)
    assert len(study.trials) == 12
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1, "one parent run, however many workers started at once"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(int(r.data.tags["hpo.trial"]) for r in children) == list(range(12))
    assert {r.data.tags["hpo.pid"] for r in children} != {children[0].data.tags["hpo.pid"]}


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_retried_and_its_run_killed(
    tmp_path: Path, database: str
) -> None:
    args = ("storage.heartbeat_interval=1", "storage.grace_period=2", "study.n_trials=4")
    victim, survivor = start_workers(tmp_path, database, 2, *args, sleep=1.5)
    deadline = time.monotonic() + 120
    victims_trial = None
    while victims_trial is None and time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            running = load(database).get_trials(states=(TrialState.RUNNING,))
        except (KeyError, Exception):
            continue
        mine = [t for t in running if t.user_attrs.get("worker", "").endswith(f":{victim.pid}")]
        victims_trial = mine[0] if mine and "mlflow_run_id" in mine[0].user_attrs else None
    assert victims_trial is not None, "the victim never ran a trial"
    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(timeout=30)

    while time.monotonic() - killed_at < 30:
        if load(database).trials[victims_trial.number].state == TrialState.FAIL:
            break
        time.sleep(0.2)
    detected = time.monotonic() - killed_at
    assert detected < 1 + 2 + 2, f"detected after {detected:.1f} s"
    _, stderr = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, stderr

    study = load(database)
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 4
    retried = [t for t in finished if t.params == victims_trial.params]
    assert retried, "the dead worker's parameters were run again"
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(
        victims_trial.user_attrs["mlflow_run_id"]
    )
    assert run.info.status == "KILLED"
