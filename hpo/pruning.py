"""Pruning in one place: what the pruner is told, in which order, and when it is not used.

Three pieces, each used by one layer of a trial:

- ``QueuedStepReporter`` (the runner): ``should_prune(step, value)`` for one
  trial, with the storage write off the training thread. ``trial.report``
  writes each step before the pruner is asked: on the journal file that is a
  locked, fsync'd append, paid once per epoch on the
  training thread. The pruner needs only the trial's own values, which this
  process already has, and the other trials' values, which it reads from
  storage. So the value is queued for a background thread to write, and the
  pruner judges a copy of the stored trial carrying the values reported so
  far. Writes stay in step order; ``flush`` waits for them before the trial is
  told, as Optuna reads a pruned trial's value from its last stored step.
- ``EpochsInStepOrder`` (cross-validation, hpo/cv.py): numbers an objective's
  per-epoch reports across folds running side by side and judges them in
  step order. The per-fold check (one report per fold, the running mean) is
  ``fold_should_prune``.
- ``without_pruning`` (the plan): Optuna does not prune multi-objective studies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import optuna

from hpo.config import ExtraObjective
from hpo.secrets import mask
from objectives.base import Reporter

log = logging.getLogger(__name__)
PruneCheck = Callable[[int, float], bool]  # (step, value) -> prune?


class QueuedStepReporter:
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


def fold_should_prune(
    should_prune: PruneCheck, fold: int, fold_values: list[float], own: bool = False
) -> bool:
    """Fold-level pruning: after fold ``fold`` the running mean is reported at step ``fold``
    (``own``: the fold's own score, for a pruner that pairs folds across trials)."""
    value = fold_values[-1] if own else float(np.mean(fold_values))
    return should_prune(fold, float(value))


def fold_scores(pruner: optuna.pruners.BasePruner) -> bool:
    """Whether ``pruner`` judges each fold's own score: WilcoxonPruner tests a trial's fold
    scores against the best trial's on the same folds (a paired signed-rank test), which
    needs the same splits in the same order for every trial (hpo's folds are fixed per
    study) and one report per fold, not running means or epochs."""
    return isinstance(pruner, optuna.pruners.WilcoxonPruner)


class EpochsInStepOrder:
    """Numbers an objective's per-epoch reports across folds and judges them in step order.

    Fold i's epoch e is step ``i * stride + e``, however many folds run side
    by side, so a step means the same fold and epoch in every trial, on every
    machine. The pruner judges a trial by its highest step, and rungs
    (successive halving, Hyperband) are climbed in step order, so reports are
    judged exactly as if the folds ran one after another: the lowest
    unfinished fold's reports as they come, a later fold's held until every
    earlier fold has ended, then judged in order. A hopeless trial still stops
    inside its first fold, at once, with the folds beside it; the decisions do
    not depend on which thread ran faster.

    Once a report is judged "prune", every fold's next report answers "stop".
    """

    def __init__(self, should_prune: PruneCheck, stride: int) -> None:
        self.should_prune = should_prune
        self.stride = stride
        self.held: dict[int, list[tuple[int, float]]] = {}  # fold -> reports not yet judged
        self.ended: set[int] = set()  # folds whose fit returned or raised
        self.judging = 0  # the fold whose reports are judged as they come
        self.pruned: tuple[int, int] | None = None  # (fold, epoch) the pruner stopped
        self.lock = threading.Lock()

    def for_fold(self, index: int) -> Reporter:
        def report(step: int, value: float) -> bool:
            with self.lock:
                if self.pruned is None:
                    self.held.setdefault(index, []).append((step, value))
                    self._judge()
                return self.pruned is not None

        return report

    def fold_ended(self, index: int) -> None:
        """A fold's fit is over: the next fold's held reports can be judged."""
        with self.lock:
            self.ended.add(index)
            self._judge()

    def _judge(self) -> None:
        while self.pruned is None:
            fold = self.judging
            for step, value in self.held.pop(fold, []):
                if self.should_prune(fold * self.stride + step, value):
                    self.pruned = (fold, step)
                    return
            if fold not in self.ended:
                return
            self.judging += 1

    def pruned_facts(self) -> dict[str, float]:
        """The fit facts of a trial pruned mid-fold: the fold and epoch it stopped at."""
        assert self.pruned is not None
        fold, step = self.pruned
        return {"pruned_fold": float(fold), "pruned_epoch": float(step + 1)}

    def pruned_reason(self) -> str:
        """Why the trial stopped, e.g. "pruned at epoch 7 of fold 2"."""
        assert self.pruned is not None
        fold, step = self.pruned
        return f"pruned at epoch {step + 1} of fold {fold}"


def without_pruning(
    extra: Sequence[ExtraObjective], pruner: optuna.pruners.BasePruner
) -> optuna.pruners.BasePruner:
    """Optuna does not prune multi-objective studies: say so once and use no pruner."""
    if not extra or isinstance(pruner, optuna.pruners.NopPruner):
        return pruner
    log.warning(
        "multi-objective studies cannot be pruned (Optuna): %s is not used; "
        "pass pruner=none to silence this",
        type(pruner).__name__,
    )
    return optuna.pruners.NopPruner()
