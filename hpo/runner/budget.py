"""The budget: a new trial only while the study's trials are below it, checked under a lock.

The budget counts the study's finished and running trials (not this
process's), under a short study-wide lock, so a rerun resumes where the
last one stopped and several processes never overshoot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.names import FAIL_REASON_ATTR, FAIL_REASON_TAG, WORKER_ATTR
from hpo.runner.liveness import recover
from hpo.runner.telling import tell_once
from hpo.samplers import GridSampler, carry_caches
from hpo.storages import study_lock
from hpo.tracking.records import TrialRecord

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker

log = logging.getLogger(__name__)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
WAIT_SECONDS = 1.0  # how often a worker waiting on others' running trials looks again


def claim(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    budget: int | None,
    tracker: Tracker | None,
    deadline: float,
    sampler_for: Callable[[int], optuna.samplers.BaseSampler] | None = None,
) -> optuna.Trial | None:
    """A new trial while the study's finished + running trials are below the budget.

    ``sampler_for(n)`` gives the sampler of the study's n-th trial (seeded by
    trial number, so that workers do not draw the same points in step).
    When running trials hold the rest of the budget, wait: if one of their
    workers dies, its trial fails (heartbeat) and is retried here. None once
    the study's finished trials reach the budget (or the time is up).
    """
    me = worker_name()
    while True:
        with study_lock(storage, study.study_name):
            trials = study.get_trials(deepcopy=False)
            if _fail_orphans(study, trials, me, tracker):
                trials = study.get_trials(deepcopy=False)
            counted = [t for t in trials if t.state in COUNTED]
            grid = study.sampler if isinstance(study.sampler, GridSampler) else None
            free, taken = grid.points_left(study) if grid else (1, 0)
            if free and (budget is None or len(counted) < budget):
                if sampler_for is not None:
                    study.sampler = carry_caches(study.sampler, sampler_for(len(trials)))
                trial = study.ask()
                try:
                    trial.set_user_attr(WORKER_ATTR, me)  # owned before the lock is let go
                except BaseException as err:  # never leave it RUNNING, unowned, run-less
                    interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
                    reason = INTERRUPTED if interrupted else DROPPED
                    with contextlib.suppress(Exception):  # else the next claim fails it
                        _fail_unrun(study, trial, reason, tracker)
                    raise
                return trial
            if not free and not taken:
                return None  # every grid point is done, or failed too often to try again
            finished = sum(t.state != TrialState.RUNNING for t in counted)
            if free and budget is not None and finished >= budget:
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(WAIT_SECONDS)
        recover(study, tracker)


def worker_name() -> str:
    """``host:pid``: who runs a trial (kept on it as its ``worker`` user attr)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _fail_orphans(
    study: optuna.Study, trials: list[FrozenTrial], me: str, tracker: Tracker | None = None
) -> bool:
    """Fail the RUNNING trials no live claim owns; True if there were any.

    A claim asks for a trial and marks it as its worker's under the study
    lock, so under that lock a RUNNING trial without a worker, or with this
    worker (which is claiming, so runs none), was made by a claim whose
    connection dropped between the two writes: it would hold a place in the
    budget until UNOWNED_SECONDS. It never ran, so it is not retried; it gets
    a FAILED MLflow run saying so, as every finished trial has its run.
    """
    orphans = [
        t
        for t in trials
        if t.state == TrialState.RUNNING and t.user_attrs.get(WORKER_ATTR) in (None, me)
    ]
    for trial in orphans:
        _fail_unrun(study, trial, DROPPED, tracker)
    return bool(orphans)


DROPPED = "created as the database connection dropped: no worker ran it"
INTERRUPTED = "interrupted as it was claimed: no worker ran it"


def _fail_unrun(
    study: optuna.Study,
    trial: optuna.Trial | FrozenTrial,
    reason: str,
    tracker: Tracker | None,
) -> None:
    """FAIL a trial no worker ran, with ``reason`` in Optuna and a FAILED MLflow run saying
    it (every finished trial has its run), unless it has ended already."""
    if tell_once(study, trial, TrialState.FAIL, attrs={FAIL_REASON_ATTR: reason}):
        log.warning("trial %d: %s: marked FAIL", trial.number, reason)
        if tracker is not None:
            record = TrialRecord(trial.number, "FAIL", {}, tags={FAIL_REASON_TAG: reason})
            tracker.end_trial(tracker.start_trial(trial.number), record)
