"""Worker liveness: heartbeats while a trial runs, and failing the trials of dead workers.

A worker can die at any moment (OOM, SIGKILL, a lost machine). Its RUNNING
trials would hold a place in the budget forever, so every worker looks for
them: by heartbeat (storages that keep one), by pid on this host, and for
trials no worker ever took. Each is failed with its reason (the trial's
``fail_reason``) and its parameters run again, once, however many workers
find it at the same moment: the one whose FAIL is stored enqueues the retry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from hpo.background import every
from hpo.names import FAIL_REASON_ATTR, RUN_ATTR, WORKER_ATTR
from hpo.runner.telling import tell_once
from hpo.secrets import mask
from hpo.storages import is_outage, max_retry
from hpo.storages.heartbeat import retry

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker

log = logging.getLogger(__name__)
UNOWNED_SECONDS = 120.0  # a RUNNING trial no worker has marked by then is failed


@dataclass(frozen=True)
class Dead:
    """A RUNNING trial whose worker is gone, and why: the trial's fail reason."""

    trial: FrozenTrial
    reason: str


def recover(study: optuna.Study, tracker: Tracker | None) -> None:
    """Fail the trials of dead workers, run their parameters again, close their runs."""
    reap(study, dead_trials(study), tracker)


def dead_trials(study: optuna.Study) -> list[Dead]:
    """The study's RUNNING trials whose worker is gone, as seen now, each with why.

    Gone: its process on this host no longer runs; it sent no heartbeat for the
    grace period (storages that keep heartbeats, its worker anywhere); or no
    worker marked it within UNOWNED_SECONDS (created just as a connection
    dropped).
    """
    storage = study._storage  # Optuna wraps an RDBStorage in a cache that keeps its heartbeat API
    stale: set[int] = set()
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        stale = set(storage._get_stale_trial_ids(study._study_id))
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _why_dead(trial, trial._trial_id in stale, storage)
        if reason:
            found.append(Dead(trial, reason))
    return found


def reap(study: optuna.Study, dead: list[Dead], tracker: Tracker | None) -> None:
    """Fail each dead trial with its reason, enqueue its parameters again, close its run.

    Safe when other workers reap the same trials at once, or their own
    workers end them: a trial that has ended meanwhile is left as it is, and
    its retry and run are whoever ended it. (The reason is stored before the
    FAIL, as a finished trial takes no attrs: a trial its worker completes at
    that very moment keeps a fail reason that nothing reads.)
    """
    for found in dead:
        trial = found.trial
        if not tell_once(study, trial, TrialState.FAIL, attrs={FAIL_REASON_ATTR: found.reason}):
            continue
        limit = max_retry(study)
        retried = retry(study, study._storage.get_trial(trial._trial_id), limit)
        log.warning(
            "trial %d: %s: marked FAIL, %s",
            trial.number,
            found.reason,
            "retried" if retried else f"not retried (storage.max_retry={limit} reached)",
        )
        if tracker is not None and RUN_ATTR in trial.user_attrs:
            tracker.kill_run(trial.user_attrs[RUN_ATTR], found.reason, trial.params)


def watchdog(
    study: optuna.Study, tracker: Tracker | None
) -> contextlib.AbstractContextManager[None]:
    """While this worker runs trials, look for dead workers' trials every heartbeat interval."""

    def watch() -> None:
        try:
            recover(study, tracker)
        except Exception as err:  # an outage is the main loop's to wait out: said there
            if not is_outage(err):
                log.warning("could not check for dead workers: %s", mask(str(err))[:200])

    return every(_heartbeat_interval(study._storage), watch, "hpo-watchdog", first=False)


def heartbeat(
    trial: optuna.Trial, storage: optuna.storages.BaseStorage
) -> contextlib.AbstractContextManager[None]:
    """Record the trial's heartbeat every interval while it runs (nothing without heartbeats).

    Optuna starts its heartbeat thread only inside ``Study.optimize``, and that
    thread dies at the first database error; this one waits out an outage.
    """

    def beat() -> None:
        try:
            storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        except Exception as err:
            if not is_outage(err):
                log.warning("heartbeat of trial %d: %s", trial.number, mask(str(err))[:200])

    return every(_heartbeat_interval(storage), beat, f"hpo-heartbeat-{trial.number}", first=True)


def alive(pid: int) -> bool:
    """Whether process ``pid`` on this host still runs (this process always does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _why_dead(trial: FrozenTrial, stale: bool, storage: optuna.storages.BaseStorage) -> str:
    """Why ``trial``'s worker counts as gone ("" while it may still run it)."""
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker:
        host, _, pid = str(worker).rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not alive(int(pid)):
            return f"its worker {worker} stopped (the process is gone)"
    if stale:
        grace = _grace_period(storage)
        return f"its worker {worker or '(unnamed)'} stopped (no heartbeat for over {grace:g} s)"
    started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
    if worker is None and time.time() - started > UNOWNED_SECONDS:
        return f"no worker took it within {UNOWNED_SECONDS:g} s"
    return ""


def _grace_period(storage: optuna.storages.BaseStorage) -> float:
    """Seconds without a heartbeat after which a trial is stale (Optuna's default: two beats)."""
    for keeper in (storage, getattr(storage, "_backend", None)):  # or in Optuna's cache's backend
        if grace := getattr(keeper, "grace_period", None):
            return float(grace)
    return 2.0 * (_heartbeat_interval(storage) or 0)


def _heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """The storage's heartbeat interval, or None when it keeps no heartbeats."""
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        return storage.get_heartbeat_interval()
    return None
