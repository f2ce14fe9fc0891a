"""What every PyTorch objective does around its own network: threads, dropout, epochs, refit.

The MLP and the LoRA objective train different networks in different loops,
but the frame is the same, and lives here once:

- ``TorchObjective``: fit a fold on its thread share and refit on all rows for
  the folds' mean best epoch (the fit/refit scaffolding); each objective
  supplies its knobs, its fold fit and its refit.
- ``GeneratorDropout``: dropout whose masks come from the fold's generator, so
  folds side by side in threads stay reproducible.
- ``EarlyStopping`` (and ``Epochs``, its refit counterpart): the per-epoch
  inner validation, the reports to the pruner, and the best epoch's weights.
- ``run_epochs``: the epoch loop that ties an objective's one-epoch step to them.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn

from objectives.base import FoldData, FoldOutput, Objective, Reporter

Knobs = TypeVar("Knobs")
History = dict[str, list[float]]


def use_threads(threads: int) -> None:
    """torch's intra-op threads (process-wide): the cores this fit may use."""
    if threads >= 1 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class GeneratorDropout(nn.Dropout):
    """nn.Dropout that draws its masks from a given generator.

    nn.Dropout draws from torch's process-wide generator, which folds training
    side by side in threads share: their masks, and so their results, would
    depend on timing. In eval mode it is the identity, as nn.Dropout.
    """

    def __init__(self, p: float) -> None:
        super().__init__(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


@dataclass
class Evaluation:
    """One epoch on the inner split: its loss, the study metric (None: none), other curves."""

    loss: float
    value: float | None = None
    curves: dict[str, float] = field(default_factory=dict)


# evaluate(model, epoch): the model as it stands after that epoch, on the inner split.
Evaluate = Callable[[nn.Module, int], Evaluation]


class Epochs:
    """A set number of epochs, nothing evaluated or reported (refit: no inner split to stop on).

    ``schedule_epochs`` is how many epochs a learning-rate schedule spans (the
    trial's, so a refit for fewer epochs still follows the trial's schedule).
    """

    def __init__(self, epochs: int, schedule_epochs: int = 0) -> None:
        self.epochs = epochs
        self.schedule_epochs = max(schedule_epochs, epochs)

    def after_epoch(self, model: nn.Module, epoch: int, history: History) -> bool:
        """True when training should stop after this epoch."""
        return epoch >= self.epochs

    def restore(self, model: nn.Module) -> None:
        """Nothing to restore: the last epoch's weights are the model."""


class EarlyStopping(Epochs):
    """Early stopping on the inner split's loss, and the per-epoch reports to the pruner.

    Each epoch reports the study metric (the loss without one) of the model
    the fold would return if it stopped now: the best-loss epoch so far. A
    fold that stops early (``patience``) reports that value once more at the
    last step (epochs - 1), so every fold ends at the same step (see
    Objective.max_steps). The best weights are kept as tensor clones (of the
    whole state, or with ``trainable_only`` of what training can change beside
    a frozen base), not a deepcopy of the module.
    """

    def __init__(
        self,
        evaluate: Evaluate,
        epochs: int,
        report: Reporter | None = None,
        patience: int | None = None,
        stopped: Callable[[], bool] = lambda: False,
        trainable_only: bool = False,
    ) -> None:
        super().__init__(epochs)
        self.trainable_only = trainable_only  # keep the trainable parameters only (a frozen base)
        self.evaluate = evaluate
        self.report = report
        self.patience = patience
        self.stopped = stopped  # the trial is over (a fold beside this one ended it)
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_value = math.nan
        self.best_state: dict[str, torch.Tensor] = {}

    def after_epoch(self, model: nn.Module, epoch: int, history: History) -> bool:
        """Record the epoch's inner loss and curves; True when training should stop."""
        if self.stopped():
            return True
        result = self.evaluate(model, epoch)
        history.setdefault("inner_valid_loss", []).append(result.loss)
        for name, value in result.curves.items():
            history.setdefault(name, []).append(value)
        if result.loss < self.best_loss:
            value = math.nan if result.value is None else result.value
            self.best_loss, self.best_epoch, self.best_value = result.loss, epoch, value
            self.best_state = self._keep(model)
        reported = self.best_loss if result.value is None else self.best_value
        if self.report is not None and self.report(epoch - 1, reported):
            return True
        patience_out = self.patience is not None and epoch - self.best_epoch >= self.patience
        done = epoch >= self.epochs or patience_out
        if done and epoch < self.epochs and self.report is not None:
            self.report(self.epochs - 1, reported)
        return done

    def restore(self, model: nn.Module) -> None:
        if not self.best_state:
            return
        if not self.trainable_only:
            model.load_state_dict(self.best_state)
            return
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.best_state:
                    p.copy_(self.best_state[name])

    def _keep(self, model: nn.Module) -> dict[str, torch.Tensor]:
        if self.trainable_only:
            trainable = model.named_parameters()
            return {n: p.detach().clone() for n, p in trainable if p.requires_grad}
        return {n: t.detach().clone() for n, t in model.state_dict().items()}


def run_epochs(
    model: nn.Module,
    one_epoch: Callable[[int], float],
    stop: Epochs,
    generator: torch.Generator,
    hint: str,
) -> History:
    """Train epoch after epoch until ``stop`` says so; returns the curves, best weights restored.

    ``one_epoch(epoch)`` trains one epoch and returns its mean training loss; a
    loss that is not finite ends the fit with ``hint`` (what to change). Every
    GeneratorDropout in the model draws from ``generator`` meanwhile.
    """
    dropouts = [m for m in model.modules() if isinstance(m, GeneratorDropout)]
    for m in dropouts:
        m.generator = generator
    history: History = {"train_loss": []}
    try:
        for epoch in range(1, stop.epochs + 1):
            model.train()
            train_loss = one_epoch(epoch)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training loss is {train_loss} at epoch {epoch}: {hint}")
            history["train_loss"].append(train_loss)
            if stop.after_epoch(model, epoch, history):
                break
    finally:
        for m in dropouts:
            m.generator = None
    stop.restore(model)
    model.eval()
    return history


@dataclass
class FoldFit:
    """What an objective's fold fit hands back: scores, curves, the stopper, its own facts,
    and the scores before compression (``FoldOutput.reference_scores``), if any."""

    scores: np.ndarray
    history: History
    stop: EarlyStopping
    facts: dict[str, float] = field(default_factory=dict)
    reference_scores: np.ndarray | None = None


class TorchObjective(Objective, Generic[Knobs]):
    """The fit/refit frame of a torch objective; subclasses set ``max_threads`` (a field).

    ``max_threads`` caps torch's threads per fit (0: the harness's share,
    FoldData.threads). A refit trains for the folds' mean best epoch, at
    least one; the fit facts always hold ``epochs_run`` and ``best_epoch``.
    """

    max_threads: int

    @abstractmethod
    def knobs(self, params: dict[str, Any]) -> Knobs:
        """This objective's defaults overridden by a trial's params, checked."""

    @abstractmethod
    def epoch_budget(self, knobs: Knobs) -> int:
        """The most epochs a fold trains with these knobs."""

    @abstractmethod
    def fit_fold(self, knobs: Knobs, fold: FoldData, report: Reporter | None) -> FoldFit:
        """Train on the fold's training rows (early-stopping on an inner split), score X_valid."""

    @abstractmethod
    def fit_all(
        self, knobs: Knobs, X: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, seed: int
    ) -> Any:
        """Train on all rows for ``epochs`` epochs; the model ``predict`` takes."""

    def max_steps(self, params: dict[str, Any]) -> int | None:
        return self.epoch_budget(self.knobs(params))

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        knobs = self.knobs(params)
        use_threads(min(fold.threads, self.max_threads) if self.max_threads else fold.threads)
        fit = self.fit_fold(knobs, fold, report)
        facts = {
            "epochs_run": float(len(fit.history["train_loss"])),
            "best_epoch": float(fit.stop.best_epoch),
            **fit.facts,
        }
        return FoldOutput(fit.scores, facts, fit.history, fit.reference_scores)

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        fit_facts: dict[str, float],
        seed: int,
    ) -> Any:
        """Train on all rows for the folds' mean best epoch (the schedule still spans them all)."""
        knobs = self.knobs(params)
        use_threads(self.max_threads or torch.get_num_threads())
        most = self.epoch_budget(knobs)
        epochs = max(1, round(fit_facts.get("best_epoch", most)))
        return self.fit_all(knobs, X, y, n_classes, epochs, seed)
