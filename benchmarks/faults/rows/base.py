"""What every row shares: the Row, the registry, the scenes, the evidence."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.faults.cluster import Cluster, cluster
from benchmarks.faults.invariants import (
    NAMES,
    Evidence,
    Snapshot,
    Verdict,
    broken,
    first_line,
    judge,
    na,
    snapshot,
)
from benchmarks.faults.scene import NotReached, Scene, scene

HEARTBEAT = ("storage.heartbeat_interval=1", "storage.grace_period=5")
GRACE = 5.0
WATCH_LIMIT = GRACE + 10.0  # grace, then the watchdog's round and a loaded machine's delay
NIGHT = "2024-06-01"
STOP_SECONDS = 60.0  # "SIGTERM ends a worker within seconds": the limit, on a loaded machine
# MLflow's client retries a failed request 7 times over about 4 minutes. Cut to about 3 s,
# a 30 s outage outlasts them as a 10-minute one outlasts the defaults (issue 11, defect 2).
SHORT_MLFLOW_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


@dataclass
class Row:
    """One fault and whether each invariant held through it."""

    fault: str
    injected: str
    invariants: dict[str, Verdict] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def broken(self) -> list[str]:
        return [key for key, v in self.invariants.items() if v.held is False]


class Skipped(Exception):
    """The fault cannot be made on this machine: the row says so instead of judging."""


Staged = Iterator[tuple[str, Evidence]]
RowFunction = Callable[..., Row]
Body = Callable[..., Iterator[tuple[str, Evidence]]]
ROWS: dict[str, RowFunction] = {}
POSTGRES: set[str] = set()  # rows that start a private PostgreSQL cluster


def row(name: str, postgres: bool = False) -> Callable[[Body], RowFunction]:
    """Register a fault. Its body yields (injected, evidence) once, from inside the servers
    it started, so that the judging reads them while they still run; then it tidies up.

    A row whose fault could not be injected (a worker crashed before it, a
    condition never came) is broken in every column, with the reason.
    """

    def register(body: Body) -> RowFunction:
        staged = contextlib.contextmanager(body)

        @functools.wraps(body)
        def run(root: Path, **sizes: float) -> Row:
            started = time.monotonic()
            try:
                with staged(root, **sizes) as (injected, found):
                    verdicts = judge(found)
            except Skipped as err:
                injected = str(err)
                verdicts = {key: na(injected) for key in NAMES}
            except NotReached as err:
                injected = f"not injected: {err}"
                verdicts = {key: broken([injected]) for key in NAMES}
            except Exception as err:  # the row itself failed: a finding too, not a crash
                injected = f"the row failed: {first_line(err)}"
                verdicts = {key: broken([injected]) for key in NAMES}
            return Row(name, injected, verdicts, time.monotonic() - started)

        ROWS[name] = run
        if postgres:
            POSTGRES.add(name)
        return run

    return register


# --- scenes ----------------------------------------------------------------------


@contextlib.contextmanager
def pg_scene(root: Path, budget: int, sleep: float) -> Iterator[tuple[Scene, Cluster]]:
    """Workers on a fresh database of a private cluster, MLflow in a SQLite file."""
    with cluster() as pg:
        url = pg.url(pg.create_database())
        store = dict(group="postgres", storage_url=url, settings=HEARTBEAT)
        with scene(root, tracking_uri=mlflow_file(root), budget=budget, sleep=sleep, **store) as s:
            s.write_study()
            yield s, pg


@contextlib.contextmanager
def file_scene(root: Path, budget: int, sleep: float, url: str = "") -> Iterator[Scene]:
    """A process on a journal file (or ``url``), MLflow in a SQLite file."""
    url = url or f"journal:{root / 'optuna.journal'}"
    group = "sqlite" if url.startswith("sqlite") else "local"
    with scene(
        root, group=group, storage_url=url, tracking_uri=mlflow_file(root), budget=budget
    ) as s:
        s.sleep = sleep
        s.write_study()
        yield s


def mlflow_file(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def evidence(s: Scene, before: Snapshot | None = None) -> Evidence:
    """The row's evidence once its processes have ended (waits for them)."""
    ended = s.wait_all()
    return Evidence(s.storage_url, s.name, s.tracking_uri, s.budget, ended, before=before)


def before(s: Scene) -> Snapshot:
    """What the study and its runs hold now, before the fault."""
    return snapshot(s.storage_url, s.name, s.tracking_uri)
