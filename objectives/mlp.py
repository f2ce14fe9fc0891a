"""A PyTorch multi-layer perceptron with every knob a practitioner tunes, pruned per epoch.

Each knob (``Knobs``) has a default on the objective, so a study fixes it in
``study.objective`` or tunes it by naming it in ``study.space``; ``width_1``,
``width_2``, ... in the space override the shared ``width`` per layer.

Inside a fold, the training rows are split once more: the model trains on
one part and early-stops (and reports to the pruner) on the other, so the
fold being scored stays unseen, as in objectives/xgboost.py. The scaler is
fit on the training rows only, and lives in the returned model (``Pipeline``)
so the model logged to MLflow takes raw features.

Each fold draws from its own ``torch.Generator`` seeded with ``FoldData.seed``
(initial weights, batch order, dropout masks), so a trial is reproducible
even when folds train side by side in threads.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from objectives.base import BadSetting, FoldData, FoldOutput, Objective, Reporter, Score
from objectives.epoch_metric import epoch_metric

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}
NORMS = ("none", "batch", "layer")
INITS = ("auto", "he", "xavier")
OPTIMIZERS = ("adam", "adamw", "sgd", "radam")
SCHEDULES = ("none", "step", "exponential", "cosine", "onecycle")
TASKS = ("classification", "regression")
PER_LAYER_WIDTH = re.compile(r"width_(\d+)")


@dataclass
class Knobs:
    """Every tunable setting, with the default used when the study neither fixes nor tunes it."""

    n_layers: int = 2
    width: int = 64
    widths: tuple[int, ...] = ()  # per layer; filled from width_1, width_2, ... params
    activation: str = "relu"
    dropout: float = 0.0
    norm: str = "none"  # none | batch | layer
    init: str = "auto"  # auto: He for relu/gelu/silu, Xavier for tanh
    optimizer: str = "adamw"  # adam | adamw | sgd | radam
    lr: float = 1.0e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    schedule: str = "none"  # none | step | exponential | cosine | onecycle
    step_size: int = 10  # step: epochs between decays
    step_gamma: float = 0.5  # step: factor per decay
    exp_gamma: float = 0.95  # exponential: factor per epoch
    batch_size: int = 64
    clip_norm: float = 0.0  # 0: no gradient clipping
    max_epochs: int = 50
    patience: int = 10  # epochs without a better inner validation loss before stopping

    def layer_widths(self) -> list[int]:
        return [
            self.widths[i] if i < len(self.widths) else self.width for i in range(self.n_layers)
        ]

    def check(self) -> Knobs:
        """Refuse a setting torch would reject later, or silently misread (SettingError)."""
        choices = {
            "activation": tuple(ACTIVATIONS),
            "norm": NORMS,
            "init": INITS,
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SettingError(name, getattr(self, name), f"one of {', '.join(allowed)}")
        for f in fields(Knobs):
            value = getattr(self, f.name)
            if isinstance(f.default, bool) and not isinstance(value, bool):
                raise SettingError(f.name, value, "true or false")
            if (
                isinstance(f.default, int)
                and not isinstance(f.default, bool)
                and not _is_int(value)
            ):
                raise SettingError(f.name, value, "a whole number")
            if isinstance(f.default, float) and not _is_number(value):
                raise SettingError(f.name, value, "a number")
        if not 0.0 <= self.dropout < 1.0:
            raise SettingError("dropout", self.dropout, "a number in [0, 1)")
        for name in ("n_layers", "width", "batch_size", "max_epochs", "patience", "step_size"):
            if getattr(self, name) < 1:
                raise SettingError(name, getattr(self, name), "a whole number >= 1")
        for name in ("lr", "step_gamma", "exp_gamma"):
            if not getattr(self, name) > 0:
                raise SettingError(name, getattr(self, name), "a number > 0")
        for name in ("weight_decay", "momentum", "clip_norm"):
            if not getattr(self, name) >= 0:
                raise SettingError(name, getattr(self, name), "a number >= 0")
        return self


class SettingError(ValueError):
    """A knob's value the MLP cannot train with: its ``key``, ``value``, and what it must be."""

    def __init__(self, key: str, value: Any, wanted: str) -> None:
        super().__init__(f"MLP {key}={value!r} is not {wanted}")
        self.key, self.value, self.wanted = key, value, wanted


def _is_int(value: Any) -> bool:
    """A whole number (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass
class MLPObjective(Knobs, Objective):
    """An MLP for classification (binary or multi-class) or regression; see the module docs."""

    task: str = "classification"
    inner_valid_fraction: float = 0.2
    # Cap on torch threads per fit (0: the harness's share, FoldData.threads). Small MLPs
    # are bound by per-op overhead: on this loaded 2-core machine a 2x128 digits fit took
    # 0.15 s on one thread and 15 s on two (threads spin waiting for each other).
    max_threads: int = 1
    flavor: str = "pytorch"

    def knobs(self, params: dict[str, Any]) -> Knobs:
        """This objective's defaults overridden by a trial's params."""
        base = Knobs(**{f.name: getattr(self, f.name) for f in fields(Knobs)})
        known = {f.name for f in fields(Knobs)}
        settings: dict[str, Any] = {}
        widths: dict[int, int] = {}
        for name, value in params.items():
            if match := PER_LAYER_WIDTH.fullmatch(name):
                if not _is_int(value) or value < 1:
                    raise SettingError(name, value, "a whole number >= 1")
                widths[int(match.group(1))] = value
            elif name in known:
                settings[name] = value
            else:
                raise ValueError(f"unknown MLP parameter '{name}': use one of {sorted(known)}")
        knobs = replace(base, **settings)
        if widths:
            knobs.widths = tuple(widths.get(i + 1, knobs.width) for i in range(knobs.n_layers))
        return knobs.check()

    def validate(self, values: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Refuse a fixed setting, or a value the space can give a knob, before the first trial."""

        if self.task not in TASKS:
            raise BadSetting(
                f"study.objective.task={self.task!r} is not one of {', '.join(TASKS)}: "
                "set study.objective.task to one of them"
            )
        if not (_is_number(self.inner_valid_fraction) and 0 < self.inner_valid_fraction < 1):
            raise BadSetting(
                f"study.objective.inner_valid_fraction={self.inner_valid_fraction!r} is not "
                "in (0, 1): set it to the share of each training fold to stop on, e.g. 0.2"
            )
        if not _is_int(self.max_threads) or self.max_threads < 0:
            raise BadSetting(
                f"study.objective.max_threads={self.max_threads!r} is not a whole number >= 0: "
                "set it to the torch threads per fit, or 0 for the harness's share"
            )
        try:
            self.knobs({})
        except SettingError as err:
            raise BadSetting(
                f"study.objective.{err.key}={err.value!r} is not {err.wanted}: "
                f"set study.objective.{err.key} to {err.wanted}"
            ) from None
        known = {f.name for f in fields(Knobs)} - {"widths"}
        for name, candidates in (values or {}).items():
            if name not in known and not PER_LAYER_WIDTH.fullmatch(name):
                raise BadSetting(
                    f"study.space.{name} is not a setting of the MLP: "
                    f"tune one of {', '.join(sorted(known))} or width_1, width_2, ..."
                )
            for value in candidates:
                try:
                    self.knobs({name: value})
                except SettingError as err:
                    raise BadSetting(
                        f"study.space.{name} offers {name}={value!r}, which is not {err.wanted}: "
                        f"change study.space.{name} so that every value is {err.wanted}"
                    ) from None

    def max_steps(self, params: dict[str, Any]) -> int | None:
        return self.knobs(params).max_epochs

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        knobs = self.knobs(params)
        _use_threads(min(fold.threads, self.max_threads) if self.max_threads else fold.threads)
        stratify = fold.y_train if self.task == "classification" else None
        X_fit, X_stop, y_fit, y_stop = train_test_split(
            fold.X_train,
            fold.y_train,
            test_size=self.inner_valid_fraction,
            random_state=fold.seed,
            stratify=stratify,
        )
        generator = torch.Generator().manual_seed(fold.seed)
        model = self._pipeline(knobs, fold.X_train, y_fit, fold.n_classes, generator)
        stop = _EarlyStopping(model, knobs, X_stop, y_stop, fold.metric, report, fold.stopped)
        history = _train(model, knobs, X_fit, y_fit, generator, stop)
        scores = predict_scores(model, fold.X_valid)
        info = {
            "epochs_run": float(len(history["train_loss"])),
            "best_epoch": float(stop.best_epoch),
            "n_params": float(sum(p.numel() for p in model.parameters())),
        }
        return FoldOutput(scores, info, history)

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        fit_facts: dict[str, float],
        seed: int,
    ) -> Pipeline:
        """Train on all rows for the folds' mean best epoch; the schedule still spans max_epochs."""
        knobs = self.knobs(params)
        _use_threads(self.max_threads or torch.get_num_threads())
        epochs = max(1, round(fit_facts.get("best_epoch", knobs.max_epochs)))
        generator = torch.Generator().manual_seed(seed)
        model = self._pipeline(knobs, X, y, n_classes, generator)
        _train(model, knobs, X, y, generator, _FixedEpochs(epochs))
        return model

    def predict(self, model: Pipeline, X: np.ndarray) -> np.ndarray:
        return predict_scores(model, X)

    def _pipeline(
        self,
        knobs: Knobs,
        X_scale_on: np.ndarray,
        y_fit: np.ndarray,
        n_classes: int,
        generator: torch.Generator,
    ) -> Pipeline:
        """Scaler (fit on training rows only), network, and the output turning logits to scores."""
        kind = "regression" if self.task == "regression" else "multiclass"
        if kind == "multiclass" and n_classes <= 2:
            kind = "binary"
        n_out = n_classes if kind == "multiclass" else 1
        scaler = StandardScaler().fit(X_scale_on)
        y_mean, y_scale = (
            (float(np.mean(y_fit)), float(np.std(y_fit)) or 1.0)
            if kind == "regression"
            else (0.0, 1.0)
        )
        net = build_network(knobs, X_scale_on.shape[1], n_out, generator)
        return Pipeline(net, kind, scaler.mean_, scaler.scale_, y_mean, y_scale)


class Pipeline(nn.Module):
    """Standardize raw features, run the network, return scores: the whole model as one module.

    Scores are what the CV harness and the metrics expect: P(class 1) for
    binary tasks, class probabilities for multi-class, values for regression
    (the network learns a standardized target; this undoes it).
    """

    x_mean: torch.Tensor
    x_scale: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        kind: str,
        x_mean: np.ndarray,
        x_scale: np.ndarray,
        y_mean: float = 0.0,
        y_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.kind = kind
        self.register_buffer("x_mean", torch.as_tensor(x_mean, dtype=torch.float32))
        self.register_buffer("x_scale", torch.as_tensor(x_scale, dtype=torch.float32))
        self.y_mean = y_mean
        self.y_scale = y_scale

    def standardize(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.x_mean) / self.x_scale

    def target(self, y: np.ndarray) -> torch.Tensor:
        """The target in the loss's terms: class ids, 0/1 floats, or standardized values."""
        if self.kind == "multiclass":
            return torch.as_tensor(y, dtype=torch.long)
        return torch.as_tensor(
            (np.asarray(y, dtype=np.float64) - self.y_mean) / self.y_scale, dtype=torch.float32
        )

    def loss_fn(self) -> nn.Module:
        return {"multiclass": nn.CrossEntropyLoss, "binary": nn.BCEWithLogitsLoss}.get(
            self.kind, nn.MSELoss
        )()

    def logits(self, Z: torch.Tensor) -> torch.Tensor:
        """The network's output on standardized features, squeezed to a vector for one output."""
        out = self.net(Z)
        return out if self.kind == "multiclass" else out.squeeze(-1)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "multiclass":
            return torch.softmax(logits, dim=-1)
        if self.kind == "binary":
            return torch.sigmoid(logits)
        return logits * self.y_scale + self.y_mean

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.scores(self.logits(self.standardize(X.float())))


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


def build_network(knobs: Knobs, n_in: int, n_out: int, generator: torch.Generator) -> nn.Sequential:
    """Linear -> norm -> activation -> dropout per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    width_in = n_in
    for width in knobs.layer_widths():
        layers.append(nn.Linear(width_in, width))
        if knobs.norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        elif knobs.norm == "layer":
            layers.append(nn.LayerNorm(width))
        layers.append(ACTIVATIONS[knobs.activation]())
        if knobs.dropout > 0:
            layers.append(GeneratorDropout(knobs.dropout))
        width_in = width
    layers.append(nn.Linear(width_in, n_out))
    net = nn.Sequential(*layers)
    initialize(net, knobs, generator)
    return net


def initialize(net: nn.Module, knobs: Knobs, generator: torch.Generator) -> None:
    """He (Kaiming) or Xavier (Glorot) weights, zero biases; ``auto`` matches the activation.

    He keeps the variance through ReLU-like units (relu, gelu, silu), Xavier
    through symmetric ones (tanh), whose gain torch's calculate_gain supplies.
    """
    scheme = knobs.init
    if scheme == "auto":
        scheme = "xavier" if knobs.activation == "tanh" else "he"
    gain = nn.init.calculate_gain("tanh" if knobs.activation == "tanh" else "relu")
    for module in net.modules():
        if isinstance(module, nn.Linear):
            if scheme == "he":
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
            else:
                nn.init.xavier_uniform_(module.weight, gain=gain, generator=generator)
            nn.init.zeros_(module.bias)


def make_optimizer(knobs: Knobs, params: Any) -> torch.optim.Optimizer:
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
    knobs: Knobs, optimizer: torch.optim.Optimizer, batches_per_epoch: int
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


class _FixedEpochs:
    """A set number of epochs, nothing reported (refit: no inner split to stop on)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def after_epoch(self, model: Pipeline, epoch: int, history: dict[str, list[float]]) -> bool:
        return epoch >= self.epochs

    def restore(self, model: Pipeline) -> None:
        """Nothing to restore: the last epoch's weights are the model."""


class _EarlyStopping(_FixedEpochs):
    """Early stopping on the inner split's loss, and the per-epoch reports to the pruner.

    Each epoch reports the study metric of the model the fold would return if
    it stopped now (the best-loss epoch so far); a fold that stops early
    reports that value once more at the last step (max_epochs - 1), so every
    fold ends at the same step (see Objective.max_steps).

    This runs every epoch, so what does not change is prepared once: the
    standardized inner-split tensors, the loss, the metric (epoch_metric:
    scikit-learn's input checks cost as much as a tenth of an epoch), and the
    best weights are kept as tensor clones, not a deepcopy of the module state.
    """

    def __init__(
        self,
        model: Pipeline,
        knobs: Knobs,
        X: np.ndarray,
        y: np.ndarray,
        metric: Score | None,
        report: Reporter | None,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(knobs.max_epochs)
        self.knobs = knobs
        self.report = report
        self.stopped = stopped  # the trial is over (a fold beside this one ended it)
        self.X = model.standardize(torch.as_tensor(X, dtype=torch.float32))
        self.target = model.target(y)
        self.loss_fn = model.loss_fn()
        self.score = epoch_metric(metric, y) if metric is not None else None
        self.metric_name = "inner_valid_" + str(getattr(metric, "name", "metric"))
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_value = math.nan
        self.best_state: dict[str, torch.Tensor] = {}

    def after_epoch(self, model: Pipeline, epoch: int, history: dict[str, list[float]]) -> bool:
        """Record the epoch's validation loss and metric; True when training should stop."""
        if self.stopped():
            return True
        loss, value = self._evaluate(model, epoch)
        history.setdefault("inner_valid_loss", []).append(loss)
        if self.score is not None:
            history.setdefault(self.metric_name, []).append(value)
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.best_value = loss, epoch, value
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        reported = self.best_value if self.score is not None else self.best_loss
        if self.report is not None and self.report(epoch - 1, reported):
            return True
        done = epoch >= self.knobs.max_epochs or epoch - self.best_epoch >= self.knobs.patience
        if done and epoch < self.knobs.max_epochs and self.report is not None:
            self.report(self.knobs.max_epochs - 1, reported)
        return done

    def _evaluate(self, model: Pipeline, epoch: int) -> tuple[float, float]:
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
        return loss, self.score(scores) if self.score is not None else math.nan

    def restore(self, model: Pipeline) -> None:
        if self.best_state:
            model.load_state_dict(self.best_state)


def _train(
    model: Pipeline,
    knobs: Knobs,
    X: np.ndarray,
    y: np.ndarray,
    generator: torch.Generator,
    stop: _FixedEpochs,
) -> dict[str, list[float]]:
    """Mini-batch training on in-memory tensors until ``stop`` says so; returns the curves."""
    Z = model.standardize(torch.as_tensor(X, dtype=torch.float32))
    target = model.target(y)
    n = len(Z)
    batch = min(knobs.batch_size, n)
    batches = n // batch  # a short last batch is dropped (batch norm needs two rows or more)
    optimizer = make_optimizer(knobs, model.parameters())
    schedule, per_batch = make_schedule(knobs, optimizer, batches)
    loss_fn = model.loss_fn()
    dropouts = [m for m in model.modules() if isinstance(m, GeneratorDropout)]
    for m in dropouts:
        m.generator = generator
    history: dict[str, list[float]] = {"train_loss": []}
    model.train()
    try:
        for epoch in range(1, knobs.max_epochs + 1):
            order = torch.randperm(n, generator=generator)
            Zs, ts = Z[order], target[order]
            total = torch.zeros(())
            for i in range(batches):
                rows = slice(i * batch, (i + 1) * batch)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model.logits(Zs[rows]), ts[rows])
                loss.backward()
                if knobs.clip_norm > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), knobs.clip_norm)
                optimizer.step()
                if per_batch and schedule is not None:
                    schedule.step()
                total += loss.detach()
            train_loss = float(total) / batches
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"training loss is {train_loss} at epoch {epoch}: lower lr or set clip_norm"
                )
            history["train_loss"].append(train_loss)
            if schedule is not None and not per_batch:
                schedule.step()
            if stop.after_epoch(model, epoch, history):
                break
    finally:
        for m in dropouts:
            m.generator = None
    stop.restore(model)
    model.eval()
    return history


def predict_scores(model: Pipeline, X: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(X, dtype=torch.float32)).numpy().astype(np.float64)


def _use_threads(threads: int) -> None:
    """torch's intra-op threads (process-wide): the cores this fit may use."""
    if threads >= 1 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
