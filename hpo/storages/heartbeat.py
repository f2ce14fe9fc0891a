"""What happens to a trial whose worker died: shared by every backend with heartbeats.

Optuna calls the stale-trial callback for each trial whose heartbeat stopped;
hpo's callback both retries the parameters and remembers the trial, so that
the runner can close its MLflow run as KILLED.
"""

from __future__ import annotations

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

MAX_RETRY = 3  # a failed trial's parameters run again at most this often, unless storage.max_retry


def max_retry(study: optuna.Study) -> int:
    """How often a failed trial's parameters are run again: ``storage.max_retry``."""
    stale = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    return stale.max_retry if isinstance(stale, StaleTrials) else MAX_RETRY


class StaleTrials:
    """Called by Optuna for each trial whose heartbeat stopped (its worker died).

    Enqueues the same parameters again (up to ``max_retry`` times, through
    Optuna's RetryHeartbeatStaleTrialCallback) and keeps the failed trials so
    that the runner can close their MLflow runs as KILLED.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.failed: list[FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.retry(study, trial)
        self.failed.append(trial)

    def drain(self) -> list[FrozenTrial]:
        failed, self.failed = self.failed, []
        return failed
