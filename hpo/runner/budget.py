"""The budget: a new trial only while the study's trials are below it, checked under a lock.

The budget counts the study's finished and running trials (not this
process's), under a short study-wide lock, so a rerun resumes where the
last one stopped and several processes never overshoot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo.runner.liveness import recover
from hpo.samplers import GridSampler
from hpo.storages import study_lock

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker

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
    while True:
        with study_lock(storage, study.study_name):
            trials = study.get_trials(deepcopy=False)
            counted = [t for t in trials if t.state in COUNTED]
            grid = study.sampler if isinstance(study.sampler, GridSampler) else None
            free, taken = grid.points_left(study) if grid else (1, 0)
            if free and (budget is None or len(counted) < budget):
                if sampler_for is not None:
                    study.sampler = sampler_for(len(trials))
                return study.ask()
            if not free and not taken:
                return None  # every grid point is done, or failed too often to try again
            finished = sum(t.state != TrialState.RUNNING for t in counted)
            if free and budget is not None and finished >= budget:
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(WAIT_SECONDS)
        recover(study, tracker)
