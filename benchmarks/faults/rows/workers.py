"""Rows that signal a worker (PostgreSQL, two workers): SIGKILL, SIGTERM, Ctrl-C, SIGSTOP."""

from __future__ import annotations

import datetime as dt
import signal
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from benchmarks.faults.invariants import (
    Snapshot,
    first_line,
)
from benchmarks.faults.rows.base import (
    GRACE,
    STOP_SECONDS,
    WATCH_LIMIT,
    Staged,
    before,
    evidence,
    pg_scene,
    row,
)
from benchmarks.faults.scene import NotReached, Proc, Scene
from benchmarks.faults.watch import watching
from hpo.names import RUN_ATTR


def _signalled(
    root: Path, sig: signal.Signals, status: int, group: bool, budget: int = 8
) -> Staged:
    """Two workers; ``sig`` to one of them inside a trial once two trials have finished.

    Beyond a-f, the README's word on a stopped worker is checked under (g): it ends
    within seconds (SIGTERM, Ctrl-C), its trial becomes FAIL and its run KILLED.
    """
    with pg_scene(root, budget, sleep=1.0) as (s, _):
        victim, _survivor = s.start(2)
        victim.expected = (status,)
        s.wait_finished(2)
        with watching(s.storage_url, s.name, WATCH_LIMIT) as watch:
            kept, trial, sent = _strike(s, victim, sig, group)
            started = time.monotonic()
            gone = victim.wait(STOP_SECONDS).returncode is not None
            took = time.monotonic() - started
            _missed(s, trial, sent, sig)
            found = evidence(s, before=kept)
        found.overdue = watch.overdue
        late = [] if gone else [f"{victim.label} still ran {STOP_SECONDS:g} s after {sig.name}"]
        found.more["g"] = late + _killed(s, trial)
        to = "the process group of " if group else ""
        yield f"{sig.name} to {to}{victim.label} in trial {trial.number}, ended {took:.1f} s", found


def _strike(
    s: Scene, victim: Proc, sig: signal.Signals, group: bool = False
) -> tuple[Snapshot, FrozenTrial, dt.datetime]:
    """What is recorded, then ``sig`` to the victim inside a trial held in a fold (so it
    cannot end first, however slow the machine); when it was sent."""
    kept = before(s)
    with s.held(victim) as trial:
        victim.send(sig, group=group)
        sent = dt.datetime.now()
    return kept, trial, sent


def _missed(s: Scene, trial: FrozenTrial, sent: dt.datetime, sig: signal.Signals) -> None:
    """NotReached when the trial had ended before ``sig`` was sent: the row lost its race,
    hpo did nothing wrong. (Optuna's times are local and naive, like ``sent``.)"""
    stored = next((t for t in s.trials() if t.number == trial.number), None)
    told = stored.datetime_complete if stored is not None else None
    if told is not None and told <= sent:
        raise NotReached(f"trial {trial.number} had ended before {sig.name} was sent")


def _killed(s: Scene, trial: FrozenTrial) -> list[str]:
    """Problems unless the stopped worker's trial is FAIL and its MLflow run KILLED."""
    state = next((t.state for t in s.trials() if t.number == trial.number), None)
    problems = [] if state == TrialState.FAIL else [f"trial {trial.number} is {state}, not FAIL"]
    try:
        status = MlflowClient(s.tracking_uri).get_run(trial.user_attrs[RUN_ATTR]).info.status
    except Exception as err:  # the run is gone: (c) says so too
        status = f"unreadable ({first_line(err)})"
    if status != "KILLED":
        problems.append(f"trial {trial.number}'s run is {status}, not KILLED")
    return problems


@row("sigkill", postgres=True)
def sigkill(root: Path, budget: int = 8) -> Staged:
    yield from _signalled(root, signal.SIGKILL, -signal.SIGKILL, group=False, budget=budget)


@row("sigterm", postgres=True)
def sigterm(root: Path, budget: int = 8) -> Staged:
    yield from _signalled(root, signal.SIGTERM, 143, group=False, budget=budget)


@row("sigint", postgres=True)
def sigint(root: Path, budget: int = 8) -> Staged:
    """Ctrl-C: SIGINT to the worker's process group (its MLflow writer too), as a terminal."""
    yield from _signalled(root, signal.SIGINT, 130, group=True, budget=budget)


@row("sigstop", postgres=True)
def sigstop(root: Path, budget: int = 8) -> Staged:
    """Stop a worker until the other fails its trial as stale, then let it go on."""
    with pg_scene(root, budget, sleep=1.0) as (s, _):
        victim, _survivor = s.start(2)
        s.wait_finished(1)
        with watching(s.storage_url, s.name, WATCH_LIMIT) as watch:
            kept, trial, sent = _strike(s, victim, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                _missed(s, trial, sent, signal.SIGSTOP)
                s.wait_for(lambda: _ended(s, trial), f"trial {trial.number} failed", GRACE + 60)
            finally:
                victim.send(signal.SIGCONT)
            paused = time.monotonic() - stopped
            found = evidence(s, before=kept)
        found.overdue = watch.overdue
        yield f"SIGSTOP {victim.label} in trial {trial.number}, SIGCONT {paused:.0f} s later", found


def _ended(s: Scene, trial: FrozenTrial) -> bool:
    return any(t.number == trial.number and t.state.is_finished() for t in s.trials())
