"""Worker liveness: heartbeats while a trial runs, and failing the trials of dead workers.

A worker can die at any moment (OOM, SIGKILL, a lost machine). Its RUNNING
trials would hold a place in the budget forever, so every worker looks for
them: by heartbeat (storages that keep one), by pid on this host, and for
trials no worker ever took. A failed trial is retried by Optuna's retry
callback with the study's own parameters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import TrialState

from hpo.names import RUN_ATTR, WORKER_ATTR
from hpo.secrets import mask
from hpo.storages import StaleTrials, is_outage, max_retry

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker

log = logging.getLogger(__name__)
UNOWNED_SECONDS = 120.0  # a RUNNING trial no worker has marked by then is failed


def recover(study: optuna.Study, tracker: Tracker | None) -> None:
    """Fail the trials of dead workers (by heartbeat, or by pid on this host), close their runs."""
    _reap_orphans(study, tracker)
    _reap_unowned(study)
    storage = study._storage  # Optuna wraps an RDBStorage in a cache that keeps its heartbeat API
    if not (isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)):
        return
    optuna.storages.fail_stale_trials(study)
    stale = storage.get_heartbeat_stale_trial_callback()
    for trial in stale.drain() if isinstance(stale, StaleTrials) else []:
        log.warning(
            "trial %d lost its worker (no heartbeat): marked FAIL and retried", trial.number
        )
        if tracker is not None and RUN_ATTR in trial.user_attrs:
            tracker.kill_run(trial.user_attrs[RUN_ATTR], "its worker stopped sending heartbeats")


def watchdog(
    study: optuna.Study, tracker: Tracker | None
) -> contextlib.AbstractContextManager[None]:
    """While this worker runs trials, look for dead workers' trials every heartbeat interval."""

    def watch() -> None:
        try:
            recover(study, tracker)
        except Exception as err:  # an outage: the main loop decides what to do
            log.warning("could not check for dead workers: %s", mask(str(err))[:200])

    return _every(_heartbeat_interval(study._storage), watch, "hpo-watchdog", first=False)


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

    return _every(_heartbeat_interval(storage), beat, f"hpo-heartbeat-{trial.number}", first=True)


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


def _reap_orphans(study: optuna.Study, tracker: Tracker | None) -> None:
    """Fail RUNNING trials whose process on this host is gone (killed without a heartbeat)."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR, "")
        if not worker.startswith(host + ":") or alive(int(worker.rsplit(":", 1)[1])):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry(study))  # same params
        retry(study, study._storage.get_trial(trial._trial_id))
        log.warning(
            "trial %d was left running by dead process %s: marked FAIL", trial.number, worker
        )
        if tracker is not None and RUN_ATTR in trial.user_attrs:
            tracker.kill_run(trial.user_attrs[RUN_ATTR], f"process {worker} died")


def _reap_unowned(study: optuna.Study) -> None:
    """Fail RUNNING trials that no worker ever took (created just as a connection dropped).

    A worker marks its trial within milliseconds of asking for it; one still
    unmarked after UNOWNED_SECONDS has no worker, no heartbeat and would
    otherwise hold a place in the budget forever.
    """
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if WORKER_ATTR not in trial.user_attrs and now - started > UNOWNED_SECONDS:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study.tell(trial.number, state=TrialState.FAIL)
                log.warning("trial %d was never started by a worker: marked FAIL", trial.number)


def _heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """The storage's heartbeat interval, or None when it keeps no heartbeats."""
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        return storage.get_heartbeat_interval()
    return None


@contextlib.contextmanager
def _every(
    interval: float | None, call: Callable[[], None], name: str, first: bool
) -> Iterator[None]:
    """Run ``call`` every ``interval`` seconds in a thread while the block runs (``first``: at
    once too); no thread when ``interval`` is None. ``call`` handles its own errors."""
    if not interval:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        if first:
            call()
        while not stop.wait(interval):
            call()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
