"""How the MLP trains: optimizer, learning-rate schedule, mini-batches, the inner split's score.

Training is mini-batch on in-memory tensors; the epoch loop, early stopping
and the reports to the pruner are objectives/torch_fit.py's, fed here with
one epoch's step (``train``) and the inner split's evaluation
(``InnerValidation``). The metric is prepared once (epoch_metric:
scikit-learn's input checks cost as much as a tenth of an epoch). A student
being distilled trains on the distillation loss (objectives/compression/
distill.py); its inner split is still scored on the labels alone, so early
stopping and the pruner's reports mean the same with a teacher or without.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from objectives.base import Score
from objectives.compression.distill import Distillation
from objectives.epoch_metric import epoch_metric
from objectives.mlp.knobs import MLPKnobs
from objectives.mlp.network import Pipeline
from objectives.torch_fit import Epochs, Evaluation, History, run_epochs


def make_optimizer(knobs: MLPKnobs, params: Any) -> torch.optim.Optimizer:
    """Adam (L2 in the gradient), AdamW (decoupled decay), SGD (momentum, Nesterov) or RAdam."""
    if knobs.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=knobs.lr,
            momentum=knobs.momentum,
            nesterov=knobs.nesterov and knobs.momentum > 0,
            weight_decay=knobs.weight_decay,
        )
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}
    optimizer: torch.optim.Optimizer = kinds[knobs.optimizer](
        params, lr=knobs.lr, weight_decay=knobs.weight_decay
    )
    return optimizer


Schedule = torch.optim.lr_scheduler.LRScheduler


def make_schedule(
    knobs: MLPKnobs, optimizer: torch.optim.Optimizer, batches_per_epoch: int
) -> tuple[Schedule | None, bool]:
    """The learning-rate schedule over max_epochs, and whether it steps per batch (one-cycle)."""
    sched = torch.optim.lr_scheduler
    if knobs.schedule == "step":
        return sched.StepLR(optimizer, knobs.step_size, gamma=knobs.step_gamma), False
    if knobs.schedule == "exponential":
        return sched.ExponentialLR(optimizer, gamma=knobs.exp_gamma), False
    if knobs.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=knobs.max_epochs), False
    if knobs.schedule == "onecycle":
        total = knobs.max_epochs * batches_per_epoch
        return sched.OneCycleLR(optimizer, max_lr=knobs.lr, total_steps=total), True
    return None, False


class InnerValidation:
    """The inner split's loss and study metric, per epoch (EarlyStopping's ``evaluate``).

    What does not change between epochs is prepared once: the standardized
    tensors, the loss and the metric.
    """

    def __init__(self, model: Pipeline, X: np.ndarray, y: np.ndarray, metric: Score | None) -> None:
        self.X = model.standardize(torch.as_tensor(X, dtype=torch.float32))
        self.target = model.target(y)
        self.loss_fn = model.loss_fn()
        self.score = epoch_metric(metric, y) if metric is not None else None
        self.metric_name = "inner_valid_" + str(getattr(metric, "name", "metric"))

    def __call__(self, model: nn.Module, epoch: int) -> Evaluation:
        assert isinstance(model, Pipeline)
        model.eval()
        with torch.no_grad():
            logits = model.logits(self.X)
            loss = float(self.loss_fn(logits, self.target))
            scores = model.scores(logits).numpy()
        model.train()
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"inner validation loss is {loss} at epoch {epoch}: lower lr or set clip_norm"
            )
        if self.score is None:
            return Evaluation(loss)
        value = self.score(scores)
        return Evaluation(loss, value, {self.metric_name: value})


def train(
    model: Pipeline,
    knobs: MLPKnobs,
    X: np.ndarray,
    y: np.ndarray,
    generator: torch.Generator,
    stop: Epochs,
    distill: Distillation | None = None,
) -> History:
    """Mini-batch training on in-memory tensors until ``stop`` says so; returns the curves.

    With ``distill`` (soft targets for the rows of ``X``, in order) each batch's
    loss is the distillation loss, the labels' loss its hard term.
    """
    Z = model.standardize(torch.as_tensor(X, dtype=torch.float32))
    target = model.target(y)
    n = len(Z)
    batch = min(knobs.batch_size, n)
    batches = n // batch  # a short last batch is dropped (batch norm needs two rows or more)
    optimizer = make_optimizer(knobs, model.parameters())
    schedule, per_batch = make_schedule(knobs, optimizer, batches)
    loss_fn = model.loss_fn()

    def one_epoch(epoch: int) -> float:
        order = torch.randperm(n, generator=generator)
        Zs, ts = Z[order], target[order]
        total = torch.zeros(())
        for i in range(batches):
            rows = slice(i * batch, (i + 1) * batch)
            optimizer.zero_grad(set_to_none=True)
            logits = model.logits(Zs[rows])
            loss = loss_fn(logits, ts[rows])
            if distill is not None:
                loss = distill.loss(logits, loss, order[rows])
            loss.backward()
            if knobs.clip_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), knobs.clip_norm)
            optimizer.step()
            if per_batch and schedule is not None:
                schedule.step()
            total += loss.detach()
        if schedule is not None and not per_batch:
            schedule.step()
        return float(total) / batches

    return run_epochs(model, one_epoch, stop, generator, "lower lr or set clip_norm")
