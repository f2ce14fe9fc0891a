"""Worker processes on one study through a real PostgreSQL server: a restart, an outage, SIGTERM.

What every storage promises to several workers (the exact budget, each grid
point once, a killed worker's trial run again) is in the storage contract,
tests/hpo/storages/test_contract.py; ``workers=N`` (hpo/workers.py) is in
test_fan_out.py.

Set HPO_TEST_PG_URL (a server where databases may be created); CI does, with
HPO_REQUIRE_POSTGRES=1 so that a missing server fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from tests.hpo.pg import new_database
from tests.hpo.storages.helpers import Store, mlflow_runs, start_workers

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
    with new_database() as url:
        yield url


def pg_workers(
    tmp_path: Path, url: str, n: int, *args: str, sleep: float = 0.0
) -> list[subprocess.Popen[str]]:
    study = STUDY.replace("SLEEP", str(sleep))
    return start_workers(tmp_path, Store("postgres", url, "tiny_pg"), study, n, *args)


def load(url: str) -> optuna.Study:
    return Store("postgres", url, "tiny_pg").load()


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
    workers = pg_workers(tmp_path, database, 2, *args, sleep=0.4)
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
    workers = pg_workers(tmp_path, through_proxy, 2, *args, sleep=0.3)
    wait_for_finished(database, 2)
    before = {t.number for t in load(database).get_trials(states=(TrialState.COMPLETE,))}
    proxy.cut()
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 1, stderr
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "unreachable for" in lines[0], stderr
        assert "storage.outage_limit" in lines[0]
        assert "Traceback" not in stderr
    after = {t.number for t in load(database).get_trials(states=(TrialState.COMPLETE,))}
    assert before <= after, "finished trials are kept"
    runs = mlflow_runs(tmp_path, "tiny_pg")
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
    victim, survivor = pg_workers(tmp_path, database, 2, "study.n_trials=6", sleep=3.0)
    trial = running_trial_of(database, victim.pid)
    victim.send_signal(signal.SIGTERM)
    _, stderr = victim.communicate(timeout=60)
    assert victim.returncode == 143, stderr
    assert "Traceback" not in stderr
    # FAIL, not COMPLETE: it stopped inside its trial rather than finishing it first
    assert load(database).trials[trial.number].state == TrialState.FAIL

    _, stderr = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, stderr
    study = load(database)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
