"""Several worker processes on one study through a real PostgreSQL server.

Set HPO_TEST_PG_URL (a server where databases may be created); CI does, with
HPO_REQUIRE_POSTGRES=1 so that a missing server fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

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
# Workers in lockstep (tests/hpo/helpers.py): all of them finish their trials at the
# same instants and ask for the next at once, so a missing or broken study lock
# shows as trials past the budget or grid points handed out twice.
LOCKSTEP_STUDY = """
name: tiny_pg
objective:
  _target_: tests.hpo.helpers.LockstepObjective
  barrier: BARRIER
  parties: PARTIES
  FAIL
data: breast_cancer
cv: {scheme: holdout}
metric: roc_auc
n_trials: N_TRIALS
space:
  x: SPACE
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
    tmp_path: Path, url: str, n: int, *args: str, sleep: float = 0.0, study: str | None = None
) -> list[subprocess.Popen[str]]:
    studies = tmp_path / "studies"
    studies.mkdir(exist_ok=True)
    (studies / "tiny_pg.yaml").write_text(study or STUDY.replace("SLEEP", str(sleep)))
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


def lockstep_study(
    tmp_path: Path, parties: int, n_trials: int, space: str, fail_above: float | None = None
) -> str:
    """LOCKSTEP_STUDY for ``parties`` workers (its barrier folder made here)."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    fail = "" if fail_above is None else f"fail_above: {fail_above}"
    return (
        LOCKSTEP_STUDY.replace("BARRIER", str(barrier))
        .replace("PARTIES", str(parties))
        .replace("FAIL", fail)
        .replace("N_TRIALS", str(n_trials))
        .replace("SPACE", space)
    )


def wait_ok(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert "Traceback" not in stderr


def load(url: str) -> optuna.Study:
    storage = url.replace("postgresql://", "postgresql+psycopg://", 1)
    return optuna.load_study(study_name="tiny_pg", storage=storage)


def mlflow_runs(tmp_path: Path) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny_pg")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.mark.slow
def test_eight_workers_started_together_on_an_empty_database_meet_the_budget_exactly(
    tmp_path: Path, database: str
) -> None:
    workers = start_workers(tmp_path, database, 8)
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
def test_four_workers_in_lockstep_never_evaluate_a_grid_point_twice(
    tmp_path: Path, database: str
) -> None:
    # 9 points: after two rounds of 4, all four workers ask at once for the last one;
    # without the lock, the extra trials would re-evaluate points (Optuna's grid sampler)
    grid = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    space = f"{{type: float, low: 0.0, high: 1.0, grid: {grid}}}"
    study = lockstep_study(tmp_path, 4, 20, space)  # the budget is capped at the grid size
    args = ("sampler=grid", "tracking.enabled=false", "finish=false")  # trials only
    wait_ok(start_workers(tmp_path, database, 4, *args, study=study))

    trials = load(database).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(grid)
    points = [t.params["x"] for t in trials]
    assert sorted(points) == grid, f"each of the {len(grid)} grid points once: {points}"
    assert len({t.user_attrs["worker"] for t in trials}) > 1, "the grid was shared"


@pytest.mark.slow
def test_four_workers_reaching_the_budget_together_meet_it_exactly_despite_failures(
    tmp_path: Path, database: str
) -> None:
    """All four ask at the same instants, also at the budget boundary, where a failing trial
    (x above 0.75: trials 1 and 10 of this seed) leaves a place that one more trial takes."""
    study = lockstep_study(tmp_path, 4, 10, "{type: float, low: 0.0, high: 1.0}", 0.75)
    args = ("sampler=random", "tracking.enabled=false", "finish=false")  # trials only
    wait_ok(start_workers(tmp_path, database, 4, *args, study=study))

    trials = load(database).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == 10, "exactly the budget, however many asked at once"
    assert failed, "some trials failed on purpose"
    assert len(complete) + len(failed) == len(trials), "nothing left running or pruned"
    assert all(t.params["x"] > 0.75 for t in failed)
    assert all(t.params["x"] <= 0.75 for t in complete)
    assert len({t.user_attrs["worker"] for t in trials}) > 1, "the trials were shared"


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
        # its run is started before its parameters are drawn: wait for both
        ready = [t for t in mine if "mlflow_run_id" in t.user_attrs and t.params]
        victims_trial = ready[0] if ready else None
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
    failed = study.trials[victims_trial.number]
    assert failed.state == TrialState.FAIL
    retried = [t for t in finished if t.system_attrs.get("failed_trial") == failed.number]
    assert retried, "the dead worker's trial was run again"
    assert retried[0].params == failed.params, "with the same parameters"
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(
        victims_trial.user_attrs["mlflow_run_id"]
    )
    assert run.info.status == "KILLED"


def restart_postgres() -> None:
    """Restart the real server the tests use (root only; CI runs as root)."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        pytest.skip("no pg_ctlcluster: cannot restart PostgreSQL here")
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def wait_for_finished(url: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = load(url)
            if len(study.get_trials(states=(TrialState.COMPLETE,))) >= n:
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} trials finished in {timeout} s")


@pytest.mark.slow
def test_workers_ride_out_a_postgres_restart_without_losing_trials(
    tmp_path: Path, database: str
) -> None:
    args = ("storage.heartbeat_interval=1", "storage.grace_period=5", "study.n_trials=12")
    workers = start_workers(tmp_path, database, 2, *args, sleep=0.4)
    wait_for_finished(database, 3)
    before = {t.number: t.value for t in load(database).get_trials(states=(TrialState.COMPLETE,))}
    restart_postgres()
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert "Traceback" not in stderr

    study = load(database)
    complete = {t.number: t.value for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(complete) == 12
    assert before.items() <= complete.items(), "a trial finished before the restart was lost"
    assert not study.get_trials(states=(TrialState.RUNNING,))


class Proxy:
    """A TCP relay to PostgreSQL that can be cut: an outage without stopping the shared server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.open = False
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.mark.slow
def test_an_outage_longer_than_the_limit_ends_workers_with_one_line_and_status_1(
    tmp_path: Path, database: str
) -> None:
    url = make_url(database)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    args = ("storage.outage_limit=3", "study.n_trials=50")
    workers = start_workers(tmp_path, through_proxy, 2, *args, sleep=0.3)
    wait_for_finished(database, 2)
    before = {t.number for t in load(database).get_trials(states=(TrialState.COMPLETE,))}
    proxy.cut()
    cut_at = time.monotonic()
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 1, stderr
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "unreachable for" in lines[0], stderr
        assert "storage.outage_limit" in lines[0]
        assert "Traceback" not in stderr
    assert time.monotonic() - cut_at < 60
    after = {t.number for t in load(database).get_trials(states=(TrialState.COMPLETE,))}
    assert before <= after, "finished trials are kept"
    runs = mlflow_runs(tmp_path)
    assert not [r for r in runs if r.info.status == "RUNNING"], "every MLflow run was closed"


def running_trial_of(url: str, pid: int, timeout: float = 120) -> optuna.trial.FrozenTrial:
    """The trial worker ``pid`` is running, once its MLflow run id is on it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            running = load(url).get_trials(states=(TrialState.RUNNING,))
        except Exception:  # the study may not exist yet
            continue
        for trial in running:
            if trial.user_attrs.get("worker", "").endswith(f":{pid}") and (
                "mlflow_run_id" in trial.user_attrs
            ):
                return trial
    raise AssertionError(f"worker {pid} never ran a trial")


@pytest.mark.slow
def test_sigterm_ends_a_worker_promptly_and_the_others_finish_the_budget(
    tmp_path: Path, database: str
) -> None:
    victim, survivor = start_workers(tmp_path, database, 2, "study.n_trials=6", sleep=3.0)
    trial = running_trial_of(database, victim.pid)
    victim.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, stderr = victim.communicate(timeout=60)
    assert victim.returncode == 143, stderr
    assert time.monotonic() - signalled < 10, "exits promptly, not after its trial"
    assert "Traceback" not in stderr
    assert load(database).trials[trial.number].state == TrialState.FAIL

    _, stderr = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, stderr
    study = load(database)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
