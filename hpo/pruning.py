"""Per-step reports to the pruner, with the storage write off the training thread.

``trial.report`` writes each step before the pruner is asked: on the journal
file that is a locked, fsync'd append (about 1.3 ms here), paid once per
epoch on the training thread. The pruner needs only the trial's own values,
which this process already has, and the other trials' values, which it reads
from storage. So the value is queued for a background thread to write, and
the pruner judges a copy of the stored trial carrying the values reported so
far. Writes stay in step order; ``flush`` waits for them before the trial is
told, as Optuna reads a pruned trial's value from its last stored step.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import optuna

from hpo.storage import mask

log = logging.getLogger(__name__)


class StepReports:
    """``should_prune(step, value)`` for one trial; call ``flush`` before telling the trial."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self.study = study
        self.trial = trial
        self.trial_id = trial._trial_id
        self.values: dict[int, float] = {}
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="hpo-report")
        self.writes: list[Future[None]] = []

    def should_prune(self, step: int, value: float) -> bool:
        """Queue the value's write, then ask the pruner about the trial with it."""
        value = float(value)
        self.values[step] = value
        self.writes.append(
            self.writer.submit(
                self.study._storage.set_trial_intermediate_value, self.trial_id, step, value
            )
        )
        # What Trial.should_prune judges (a copy of the trial as this process knows it, its
        # system attrs read lazily from storage: pruners keep rungs there), with the values.
        trial = self.trial._get_latest_trial()
        trial.intermediate_values = dict(self.values)
        return self.study.pruner.prune(self.study, trial)

    def flush(self) -> None:
        """Wait for every queued write; a failed one is logged (a lost curve point, not a trial)."""
        self.writer.shutdown(wait=True)
        for write in self.writes:
            if (err := write.exception()) is not None:
                log.warning("an intermediate value was not stored: %s", mask(str(err))[:200])
        self.writes.clear()
