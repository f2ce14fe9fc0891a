"""One fault row's scene: a study file, its two stores, and the hpo processes run on it.

Every process is ``python -m hpo`` exactly as a user types it, in a scratch
directory, each in a session of its own (so Ctrl-C can be sent to its
process group as a terminal would, and nothing it started outlives the row).
Output goes to files, not pipes: a pipe nobody reads while the row waits
would fill up and stall the worker, which would be a fault of our making.
Rows wait on conditions (trials in the storage, a process's exit), never on
a fixed sleep where a condition exists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks.common import REPO
from hpo.config import StorageConfig
from hpo.names import RUN_ATTR, WORKER_ATTR
from hpo.storages import open_storage

T = TypeVar("T")

EXIT_TIMEOUT = 300.0  # seconds a process may take to end once the row waits for it
STUDY = """name: {name}
objective:
  _target_: benchmarks.faults.objective.FaultObjective
  sleep: {sleep}
  fail_above: {fail_above}
  nan: {nan}
  hold: {hold}
data: breast_cancer
cv: {{scheme: kfold, n_splits: 2}}
metric: roc_auc
n_trials: {n_trials}
max_failures: {max_failures}
space:
  x: {{type: float, low: 0.0, high: 1.0}}
"""


class NotReached(Exception):
    """A condition the row waited for never came: the fault could not be injected as planned."""


@dataclass(frozen=True)
class Ended:
    """How one process ended, and how it was expected to."""

    label: str
    returncode: int | None  # None: it had not ended within EXIT_TIMEOUT and was killed
    stdout: str
    stderr: str
    expected: tuple[int, ...]
    user_fault: bool  # the user's own fault may end it: then in one `error:` line


@dataclass
class Proc:
    """One running ``python -m hpo`` of the row."""

    label: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path
    expected: tuple[int, ...] = (0,)
    user_fault: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: signal.Signals, group: bool = False) -> None:
        """``sig`` to the worker (``group``: to everything it started too, as Ctrl-C does)."""
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def wait(self, timeout: float = EXIT_TIMEOUT) -> Ended:
        try:
            code: int | None = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.kill()
        return Ended(
            label=self.label,
            returncode=code,
            stdout=self.out.read_text(errors="replace"),
            stderr=self.err.read_text(errors="replace"),
            expected=self.expected,
            user_fault=self.user_fault,
        )

    def kill(self) -> None:
        """End the worker's whole session, stopped or not."""
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
        self.popen.wait()


@dataclass
class Scene:
    """A scratch directory holding the study file, its stores and the processes' output."""

    root: Path
    group: str  # hpo's storage= option: local, sqlite, postgres
    storage_url: str
    tracking_uri: str
    name: str = "faults"
    budget: int = 8
    sleep: float = 0.5  # seconds per fold (two folds a trial)
    settings: tuple[str, ...] = ()  # overrides every process of the row gets
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    _storage: optuna.storages.BaseStorage | None = None  # opened once, dropped on any error

    def write_study(
        self, fail_above: float | None = None, nan: bool = False, max_failures: int = 10
    ) -> None:
        studies = self.root / "studies"
        studies.mkdir(exist_ok=True)
        text = STUDY.format(
            name=self.name,
            sleep=self.sleep,
            fail_above="null" if fail_above is None else fail_above,
            nan=str(nan).lower(),
            hold=self.hold,
            n_trials=self.budget,
            max_failures=max_failures,
        )
        (studies / f"{self.name}.yaml").write_text(text)

    def command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hpo",
            f"study={self.name}",
            f"storage={self.group}",
            f"storage.url={self.storage_url}",
            f"tracking.uri={self.tracking_uri}",
            "pruner=none",
            "progress=false",
            "n_jobs=1",
            *self.settings,
            *extra,
        ]

    def start(
        self,
        n: int = 1,
        *extra: str,
        label: str = "worker",
        expected: tuple[int, ...] = (0,),
        user_fault: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> list[Proc]:
        """``n`` processes of the same command, started back to back (at once, for a race);
        ``env``: variables for these processes only, over the scene's."""
        variables = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            **self.env,
            **(env or {}),
        }
        started = []
        for i in range(n):
            tag = f"{label}-{len(self.procs) + i}"
            out, err = self.root / f"{tag}.out", self.root / f"{tag}.err"
            popen = subprocess.Popen(
                self.command(*extra, f"hydra.run.dir={self.root / 'outputs' / tag}"),
                cwd=self.root,
                env=variables,
                stdout=out.open("wb"),
                stderr=err.open("wb"),
                start_new_session=True,
            )
            started.append(Proc(tag, popen, out, err, expected, user_fault))
        self.procs.extend(started)
        return started

    def wait_all(self, procs: Sequence[Proc] | None = None) -> list[Ended]:
        return [proc.wait() for proc in (self.procs if procs is None else procs)]

    # --- what the storage says --------------------------------------------------

    def trials(self) -> list[FrozenTrial]:
        """The study's trials; none while the study (or its database) is not there yet."""
        try:
            if self._storage is None:
                self._storage = open_storage(StorageConfig(url=self.storage_url))
            study = optuna.load_study(study_name=self.name, storage=self._storage)
            return study.get_trials(deepcopy=False)
        except Exception:  # not created yet, the database restarting, a damaged journal
            self._storage = None
            return []

    def finished(self) -> int:
        done = (TrialState.COMPLETE, TrialState.PRUNED)
        return sum(t.state in done for t in self.trials())

    @property
    def hold(self) -> Path:
        """While this file exists every fold stays in its trial (FaultObjective.hold)."""
        return self.root / "hold"

    @contextlib.contextmanager
    def held(self, proc: Proc, timeout: float = 120.0) -> Iterator[FrozenTrial]:
        """``proc``'s running trial, held inside a fold until the block ends: a fault sent
        meanwhile lands in the trial however slow the machine (no race with its end)."""
        self.hold.touch()
        try:
            marker = Path(f"{self.hold}.{proc.pid}")
            self.wait_for(marker.exists, f"{proc.label} held in a fold", timeout)
            yield self.running_trial_of(proc, timeout)
        finally:
            self.hold.unlink(missing_ok=True)

    def wait_finished(self, n: int, timeout: float = 120.0) -> None:
        self.wait_for(lambda: self.finished() >= n, f"{n} finished trials", timeout)

    def running_trial_of(self, proc: Proc, timeout: float = 120.0) -> FrozenTrial:
        """The trial ``proc`` runs, once its MLflow run is open and its parameters drawn: a fault
        then lands inside a fold, with a live run."""

        def trial() -> FrozenTrial | None:
            for t in self.trials():
                owner = str(t.user_attrs.get(WORKER_ATTR, ""))
                if t.state == TrialState.RUNNING and owner.endswith(f":{proc.pid}"):
                    return t if RUN_ATTR in t.user_attrs and t.params else None
            return None

        return self.wait_for(trial, f"a running trial of {proc.label}", timeout)

    def wait_for(self, found: Callable[[], T | None], what: str, timeout: float) -> T:
        """``found()`` once it is truthy; NotReached after ``timeout`` s or when every process of
        the row has ended (nothing can change any more)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = found()
            if value:
                return value
            if self.procs and not any(p.alive() for p in self.procs):
                raise NotReached(f"{what}: every process had ended first")
            time.sleep(0.3)
        raise NotReached(f"{what}: not within {timeout:g} s")

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.kill()


@contextlib.contextmanager
def scene(root: Path, **fields: Any) -> Iterator[Scene]:
    """A Scene whose processes are all ended on the way out, whatever the row did."""
    made = Scene(root=root, **fields)
    try:
        yield made
    finally:
        made.close()
