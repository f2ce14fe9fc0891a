"""What happens to a trial whose worker died: shared by every backend with heartbeats.

Its parameters run again: a WAITING copy, as Optuna's
RetryHeartbeatStaleTrialCallback makes it (the ``failed_trial`` system attr
names the trial it retries), without the dead run's own user attrs. hpo's
runner fails dead workers' trials itself (``hpo.runner.liveness``) and calls
``retry`` for each; ``StaleTrials`` is the same for Optuna's own
``fail_stale_trials``, and remembers the trials so that their MLflow runs can
be closed as KILLED.
"""

from __future__ import annotations

import copy

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from hpo.names import CV_ATTR, FAIL_REASON_ATTR, OOF_ATTR, RUN_ATTR, WORKER_ATTR

MAX_RETRY = 3  # a failed trial's parameters run again at most this often, unless storage.max_retry
RUN_ATTRS = (WORKER_ATTR, RUN_ATTR, FAIL_REASON_ATTR, CV_ATTR, OOF_ATTR)  # the dead run's


def max_retry(study: optuna.Study) -> int:
    """How often a failed trial's parameters are run again: ``storage.max_retry``."""
    stale = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    return stale.max_retry if isinstance(stale, StaleTrials) else MAX_RETRY


def retry(study: optuna.Study, trial: FrozenTrial, limit: int) -> bool:
    """Enqueue the failed ``trial``'s parameters again, unless they already ran ``limit`` times
    more (Optuna's rule); True when enqueued.

    Call it once per failed trial: Optuna adds a copy on every call. The copy
    keeps none of the dead run's own attrs (its worker, MLflow run, fail reason,
    CV facts), so that no reaper mistakes it for the dead worker's trial.
    """
    again = copy.deepcopy(trial)  # Optuna appends to the retry history it is given
    again.user_attrs = {k: v for k, v in again.user_attrs.items() if k not in RUN_ATTRS}
    RetryHeartbeatStaleTrialCallback(max_retry=limit)(study, again)
    return len(trial.system_attrs.get("retry_history", [])) < limit


class StaleTrials:
    """Called by Optuna's ``fail_stale_trials`` for each trial whose heartbeat stopped.

    Enqueues the same parameters again (up to ``max_retry`` times, see
    ``retry``) and keeps the failed trials so that the runner can close their
    MLflow runs as KILLED.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        self.failed: list[FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        retry(study, trial, self.max_retry)
        self.failed.append(trial)

    def drain(self) -> list[FrozenTrial]:
        failed, self.failed = self.failed, []
        return failed
