"""Helpers shared by the storage tests: a store of each kind, a child process that takes the
study lock, heartbeats aged on purpose so that staleness never depends on waiting, worker
processes (``python -m hpo``) on one study, in lockstep or holding a trial to be killed, and
the gRPC proxy (``python -m hpo.storages.proxy``) as a real process."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb.models import TrialHeartbeatModel
from optuna.trial import FrozenTrial, TrialState

from hpo.config import StorageConfig
from hpo.storages import open_storage, serves_one_worker, study_lock
from hpo.storages.redis_journal import RedisJournalStorage
from objectives.base import FoldData, FoldOutput, Reporter
from tests.hpo.helpers import PriorObjective

if TYPE_CHECKING:
    from mlflow.entities import Run

REPO = Path(__file__).parents[3]
GROUP = {
    "journal": "local",
    "sqlite": "sqlite",
    "postgres": "postgres",
    "redis": "redis",
    "grpc": "grpc",
}
PROXY_START = 120.0  # seconds the proxy may take to say it listens (imports, on a busy machine)
WORKER_PROCESSES = 3  # worker processes on one study, where the backend serves several
# Workers in lockstep (tests/hpo/helpers.py): all of them finish their trials at the same
# instants and ask for the next at once, so a missing or broken study lock shows as trials
# past the budget or grid points handed out twice.
LOCKSTEP_STUDY = """
name: {name}
objective:
  _target_: tests.hpo.helpers.LockstepObjective
  barrier: {barrier}
  parties: {parties}
  fail_above: {fail_above}
data: breast_cancer
cv: {{scheme: holdout}}
metric: roc_auc
n_trials: {n_trials}
space:
  x: {space}
"""
# One worker holds its first trial until it is killed (HoldObjective); the others run theirs.
HOLD_STUDY = """
name: {name}
objective: {{_target_: tests.hpo.storages.helpers.HoldObjective, hold: {hold}}}
data: breast_cancer
cv: {{scheme: holdout}}
metric: roc_auc
n_trials: {n_trials}
space:
  x: {{type: float, low: 0.0, high: 1.0}}
"""


@dataclass
class Store:
    kind: str
    url: str
    study: str  # a study name no other test uses
    behind: str = ""  # grpc: the PostgreSQL database the proxy serves

    def cfg(self, **settings: object) -> StorageConfig:
        return StorageConfig(url=self.url, **settings)  # type: ignore[arg-type]

    @property
    def workers(self) -> int:
        """How many worker processes the backend serves at once in these tests."""
        return 1 if serves_one_worker(self.url) else WORKER_PROCESSES

    def load(self) -> optuna.Study:
        return optuna.load_study(study_name=self.study, storage=open_storage(self.cfg()))

    def beats(self, storage: BaseStorage) -> BaseStorage:
        """Where ``storage``'s heartbeats can be aged: through a proxy, the database behind it."""
        return open_storage(StorageConfig(url=self.behind)) if self.behind else storage


def lock_and_count(url: str, study: str, log: str, counter: str, rounds: int) -> None:
    """``rounds`` times: under the study lock, log enter/exit and bump a file counter.

    The counter is read and rewritten non-atomically, and the log says who was
    inside: without exclusion, entries interleave and updates get lost.
    """
    storage = open_storage(StorageConfig(url=url))
    for _ in range(rounds):
        with study_lock(storage, study):
            with open(log, "a") as out:
                out.write("enter\n")
            path = Path(counter)
            path.write_text(str(int(path.read_text() or "0") + 1))
            with open(log, "a") as out:
                out.write("exit\n")


def age_heartbeat(storage: BaseStorage, trial_id: int, seconds: float) -> None:
    """Move trial ``trial_id``'s last heartbeat ``seconds`` into the past."""
    if isinstance(storage, RedisJournalStorage):
        storage._client.hset(storage._key, str(trial_id), storage._now() - seconds)
        return
    assert isinstance(storage, RDBStorage)
    session = storage.scoped_session()
    try:
        beat = session.query(TrialHeartbeatModel).filter_by(trial_id=trial_id).one()
        beat.heartbeat = beat.heartbeat - dt.timedelta(seconds=seconds)
        session.commit()
    finally:
        session.close()


def start_workers(
    cwd: Path, store: Store, study: str, n: int, *args: str
) -> list[subprocess.Popen[str]]:
    """``n`` workers started at once by hand (``python -m hpo``) on ``store``.

    ``study`` is the text of the study file (``studies/tiny_workers.yaml`` in ``cwd``);
    MLflow logs to ``cwd/mlflow.db``.
    """
    studies = cwd / "studies"
    studies.mkdir(exist_ok=True)
    (studies / "tiny_workers.yaml").write_text(study)
    command = [
        sys.executable,
        "-m",
        "hpo",
        "study=tiny_workers",
        f"storage={GROUP[store.kind]}",
        f"storage.url={store.url}",
        "pruner=none",
        f"tracking.uri=sqlite:///{cwd}/mlflow.db",
        "progress=false",
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [
        subprocess.Popen(
            command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(n)
    ]


def wait_ok(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert "Traceback" not in stderr


def lockstep_study(
    folder: Path,
    name: str,
    parties: int,
    n_trials: int,
    space: str = "{type: float, low: 0.0, high: 1.0}",
    fail_above: float | None = None,
) -> str:
    """LOCKSTEP_STUDY for ``parties`` workers (its barrier folder made here)."""
    barrier = folder / "barrier"
    barrier.mkdir()
    fail = "null" if fail_above is None else str(fail_above)
    return LOCKSTEP_STUDY.format(
        name=name, barrier=barrier, parties=parties, fail_above=fail, n_trials=n_trials, space=space
    )


def mlflow_runs(cwd: Path, experiment: str) -> list[Run]:
    from mlflow.tracking import MlflowClient  # not in the lock's child processes

    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    return client.search_runs([found.experiment_id], max_results=1000)


@dataclass
class HoldObjective(PriorObjective):
    """PriorObjective whose first fit, in whichever worker gets there first, never ends.

    That worker writes its pid to the file ``hold`` and waits to be killed (or its
    trial stopped); every other fit, in any worker, is PriorObjective's.
    """

    hold: str = ""

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        mine = Path(f"{self.hold}.{os.getpid()}")
        mine.write_text(str(os.getpid()))
        try:
            os.link(mine, self.hold)  # atomic: only one worker ever holds
        except FileExistsError:
            return super().fit_predict(params, fold, report)
        finally:
            mine.unlink()
        while not fold.stopped():
            time.sleep(0.05)
        raise RuntimeError("the held trial was stopped")


def wait_for(found: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    """``found()`` once it is truthy (polled), or an AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := found():
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def held_trial(store: Store, hold: Path) -> tuple[int, FrozenTrial]:
    """The pid of the worker holding its trial (HoldObjective), and that trial once its MLflow
    run id and parameters are on it."""
    wait_for(hold.exists, "no worker took the hold")
    pid = int(hold.read_text())

    def trial() -> FrozenTrial | None:
        for t in store.load().get_trials(states=(TrialState.RUNNING,)):
            if t.user_attrs.get("worker", "").endswith(f":{pid}"):
                return t if "mlflow_run_id" in t.user_attrs and t.params else None
        return None

    return pid, wait_for(trial, f"worker {pid}'s held trial")


@contextlib.contextmanager
def proxy(database: str, *args: str) -> Iterator[str]:
    """``python -m hpo.storages.proxy`` serving ``database`` on a free port: its grpc:// URL,
    once it says it listens; stopped (SIGTERM, its exit awaited) afterwards. Its log goes to
    a file (a pipe nobody reads could fill and stall it); a traceback in it fails the test."""
    command = [sys.executable, "-m", "hpo.storages.proxy", "port=0", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HPO_STORAGE_URL": database}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=log)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(x) for x in server.stdout or ()])
        reader.start()
        try:
            try:
                line = lines.get(timeout=PROXY_START)
            except queue.Empty:
                line = ""
            found = re.search(r"grpc://\S+:(\d+)", line)
            if not found:
                server.kill()
                server.wait()
                log.seek(0)
                raise AssertionError(f"the proxy did not start: {line}{log.read()}")
            yield f"grpc://127.0.0.1:{found[1]}"
        finally:
            if server.poll() is None:
                server.terminate()
            server.wait(timeout=60)
            reader.join(timeout=10)
            log.seek(0)
            said = log.read()
        assert "Traceback" not in said, said
