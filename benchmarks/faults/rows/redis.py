"""Rows on the Redis storage (Optuna's journal in Redis): a worker killed, the server restarted.

Each row gets a private redis-server (redis_server.py), so killing it
disturbs nobody. Without redis-server installed the rows are skipped (n/a),
unless HPO_REQUIRE_REDIS=1 (a machine that must test Redis): then they fail.

The Redis backend keeps heartbeats (hpo/storages/redis_journal.py), so a dead
worker's trial must be failed by another worker within the grace period, as
on PostgreSQL. On one machine a worker would be found dead by its pid before
its heartbeat went stale; the killed worker here runs under another host
name (a UTS namespace of its own, root only), as a worker on another machine,
so that only its heartbeat can tell.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from benchmarks.common import REPO
from benchmarks.faults.redis_server import RedisServer, redis_server, unavailable
from benchmarks.faults.rows.base import (
    HEARTBEAT,
    STOP_SECONDS,
    WATCH_LIMIT,
    Skipped,
    Staged,
    before,
    evidence,
    mlflow_file,
    row,
)
from benchmarks.faults.rows.workers import _killed, _missed, _strike
from benchmarks.faults.scene import Proc, Scene, scene
from benchmarks.faults.watch import Watch
from hpo.config import StorageConfig
from hpo.names import FAIL_REASON_ATTR, WORKER_ATTR
from hpo.storages import open_storage
from hpo.storages.redis_journal import RedisJournalStorage

ELSEWHERE = "elsewhere"  # the host name the killed worker runs under
# Imported by every Python process started with it on PYTHONPATH (the worker, its MLflow
# writer): a UTS namespace of its own, another host name. Fails quietly where not allowed.
SITECUSTOMIZE = f"""import ctypes, socket
if ctypes.CDLL(None, use_errno=True).unshare(0x04000000) == 0:  # CLONE_NEWUTS
    socket.sethostname({ELSEWHERE!r})
"""


@row("redis-sigkill")
def redis_sigkill(root: Path, budget: int = 8) -> Staged:
    """Two workers; SIGKILL to the one "on another machine" inside a trial, once two trials
    have finished. The other must fail that trial by its heartbeat, retry its parameters, and
    finish the budget; the killed worker's run ends KILLED (its writer closes it)."""
    with redis_scene(root, budget, sleep=1.0) as (s, _):
        victim = start_elsewhere(s, root)
        victim.expected = (-signal.SIGKILL,)
        s.start(1)
        s.wait_finished(2)
        with watching_redis(s.storage_url, s.name) as watch:
            kept, trial, sent = _strike(s, victim, signal.SIGKILL)
            victim.wait(STOP_SECONDS)
            _missed(s, trial, sent, signal.SIGKILL)
            found = evidence(s, before=kept)
        found.overdue = watch.overdue
        reason = fail_reason(s, trial)
        found.more["a"] = _reaped(trial, reason)
        found.more["g"] = _killed(s, trial)
        yield f"SIGKILL to {victim.label} in trial {trial.number}; it became: {reason}", found


@row("redis-restart")
def redis_restart(root: Path, budget: int = 12) -> Staged:
    """Two workers; the server crashes (SIGKILL) once three trials have finished and is
    started again at once on its append-only file, as a supervisor would. Workers wait out
    the gap; nothing the server acknowledged is lost."""
    with redis_scene(root, budget, sleep=0.2, durable=True) as (s, server):
        s.start(2)
        s.wait_finished(3)
        kept = before(s)
        with watching_redis(s.storage_url, s.name) as watch:
            started = time.monotonic()
            server.restart()
            took = time.monotonic() - started
            found = evidence(s, before=kept)
        found.overdue = watch.overdue
        yield f"redis-server SIGKILL, back on its AOF in {took:.1f} s, after 3 finished", found


# --- the scene -------------------------------------------------------------------


@contextlib.contextmanager
def redis_scene(
    root: Path, budget: int, sleep: float, durable: bool = False
) -> Iterator[tuple[Scene, RedisServer]]:
    """Workers on a private redis-server (heartbeat 1 s, grace 5 s), MLflow in a SQLite file."""
    with private_redis(durable) as server:
        store = dict(group="redis", storage_url=server.url, settings=HEARTBEAT)
        with scene(root, tracking_uri=mlflow_file(root), budget=budget, sleep=sleep, **store) as s:
            s.write_study()
            yield s, server


@contextlib.contextmanager
def private_redis(durable: bool) -> Iterator[RedisServer]:
    """A private server, or Skipped without redis-server (a failure with HPO_REQUIRE_REDIS=1)."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("HPO_REQUIRE_REDIS") == "1":
            raise RuntimeError(f"HPO_REQUIRE_REDIS=1 but {reason}")
        raise Skipped(f"skipped: {reason}")
    with redis_server(durable) as server:
        yield server


def start_elsewhere(s: Scene, root: Path) -> Proc:
    """One worker of the row's command under the host name ELSEWHERE (see SITECUSTOMIZE)."""
    shim = root / "elsewhere"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    s.env = {"PYTHONPATH": f"{shim}{os.pathsep}{REPO}"}
    try:
        (victim,) = s.start(1, label=ELSEWHERE)
    finally:
        s.env = {}
    return victim


def fail_reason(s: Scene, trial: FrozenTrial) -> str:
    stored = next((t for t in s.trials() if t.number == trial.number), None)
    if stored is None:
        return "gone from the study"
    return str(stored.user_attrs.get(FAIL_REASON_ATTR, stored.state.name))


def _reaped(trial: FrozenTrial, reason: str) -> list[str]:
    """A worker "on another machine" can be found dead only by its heartbeat."""
    host = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")[0]
    if host != ELSEWHERE or "no heartbeat" in reason:
        return []
    return [f"trial {trial.number} of a worker on host {host} was not failed by heartbeat"]


# --- invariant (a) while the row runs ------------------------------------------------


class RedisWatch(Watch):
    """watch.py's Watch on the Redis storage: a RUNNING trial's last sign of life is its
    heartbeat (the server's clock, in the storage's hash), or its start before the first."""

    def __init__(self, url: str, study: str, limit: float) -> None:
        super().__init__(url, study, limit)
        self._storage: RedisJournalStorage | None = None

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._look()
            except Exception:  # the row may be restarting the server: look again later
                self._storage = None

    def _look(self) -> None:
        if self._storage is None:
            opened = open_storage(StorageConfig(url=self.url))
            assert isinstance(opened, RedisJournalStorage)
            self._storage = opened
        storage = self._storage
        study_id = storage.get_study_id_from_name(self.study)
        running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        beats = storage._client.hmget(storage._key, [str(t._trial_id) for t in running])
        now = storage._now()
        for trial, beat in zip(running, beats, strict=True):
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            age = now - max(float(beat) if beat else 0.0, started)
            if age > self.limit:
                self.worst[trial.number] = max(age, self.worst.get(trial.number, 0.0))


@contextlib.contextmanager
def watching_redis(url: str, study: str, limit: float = WATCH_LIMIT) -> Iterator[Watch]:
    watch = RedisWatch(url, study, limit)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
