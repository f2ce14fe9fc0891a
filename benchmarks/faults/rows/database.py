"""Rows where the database goes away or is raced: restart, killed sessions, starts at once."""

from __future__ import annotations

import time
from pathlib import Path

from optuna.trial import FrozenTrial

from benchmarks.faults.cluster import Cluster
from benchmarks.faults.rows.base import (
    WATCH_LIMIT,
    Staged,
    before,
    evidence,
    file_scene,
    pg_scene,
    row,
)
from benchmarks.faults.scene import Scene
from benchmarks.faults.watch import watching


@row("pg-restart", postgres=True)
def pg_restart(root: Path, budget: int = 12) -> Staged:
    with pg_scene(root, budget, sleep=0.2) as (s, pg):
        s.start(2)
        s.wait_finished(3)
        kept = before(s)
        with watching(s.storage_url, s.name, WATCH_LIMIT) as watch:
            started = time.monotonic()
            pg.restart()
            took = time.monotonic() - started
            found = evidence(s, before=kept)
        found.overdue = watch.overdue
        yield f"pg_ctl restart -m fast ({took:.1f} s) after 3 finished", found


@row("pg-kills", postgres=True)
def pg_kills(root: Path, seconds: float = 20.0, budget: int = 12) -> Staged:
    """pg_terminate_backend on every session of the study's database, every second."""
    with pg_scene(root, budget, sleep=0.2) as (s, pg):
        s.start(2)
        s.wait_finished(2)
        kept = before(s)
        database = s.storage_url.rsplit("/", 1)[1]
        with watching(s.storage_url, s.name, WATCH_LIMIT) as watch:
            ended = _kill_sessions(s, pg, database, seconds)
            found = evidence(s, before=kept)
        found.overdue = watch.overdue
        yield f"pg_terminate_backend every 1 s for {seconds:g} s ({ended} sessions)", found


def _kill_sessions(s: Scene, pg: Cluster, database: str, seconds: float) -> int:
    ended = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.alive() for p in s.procs):
        ended += pg.kill_connections(database)
        time.sleep(1.0)  # the fault's own rhythm, not a wait for a condition
    return ended


@row("start-together", postgres=True)
def start_together(root: Path, budget: int = 8) -> Staged:
    """Four workers started at once on a database without Optuna's tables."""
    with pg_scene(root, budget, sleep=0.2) as (s, _):
        with watching(s.storage_url, s.name, WATCH_LIMIT) as watch:
            s.start(4)
            found = evidence(s)
        found.overdue = watch.overdue
        yield "4 workers started at once on an empty database", found


@row("sqlite-together")
def sqlite_together(root: Path, budget: int = 4) -> Staged:
    """SQLite serves one process per study: of several started at once, the others are
    refused with one line. Two that ran the study side by side break (f): the second
    process, a user's fault, was not refused."""
    with file_scene(root, budget, sleep=0.2, url=f"sqlite:///{root / 'optuna.db'}") as s:
        s.start(3, expected=(0, 2), user_fault=True)
        found = evidence(s)
        found.more["f"] = _side_by_side(s.trials())
        codes = [e.returncode for e in found.ended]
        yield f"3 processes started at once: {codes.count(0)} ran, {codes.count(2)} refused", found


def _side_by_side(trials: list[FrozenTrial]) -> list[str]:
    """Processes that ran trials of the study at the same time (their spans overlap)."""
    spans = [
        (t.datetime_start, t.datetime_complete, str(t.user_attrs.get("worker", "?")))
        for t in trials
        if t.datetime_start and t.datetime_complete
    ]
    pairs = {
        tuple(sorted((who, other)))
        for start, end, who in spans
        for other_start, other_end, other in spans
        if who != other and start < other_end and other_start < end
    }
    return [f"{a} and {b} ran trials at the same time" for a, b in sorted(pairs)]
