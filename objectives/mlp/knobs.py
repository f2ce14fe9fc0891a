"""The MLP's knobs: every setting a practitioner tunes, its default, and what it may be.

Each knob has a default on the objective, so a study fixes it in
``study.objective`` or tunes it by naming it in ``study.space``; ``width_1``,
``width_2``, ... in the space override the shared ``width`` per layer. The
checks here refuse what torch would reject later, or silently misread.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from objectives.compression.distill import is_teacher
from objectives.compression.prune import PRUNE_KINDS
from objectives.compression.quantize import QUANTIZE, refusal

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
class MLPKnobs:
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
    # Compression, applied to the trained model (objectives/mlp/compress.py); the fold is
    # scored, measured and the refit model logged as compressed.
    quantize: str = "none"  # none | int8 (dynamic) | qat (quantization-aware training)
    qat_epochs: int = 3  # qat: epochs of fake-quantized fine-tuning before converting to int8
    prune_amount: float = 0.0  # share of each hidden layer's weights (or neurons) zeroed; 0: off
    prune_kind: str = "l1_unstructured"  # l1_unstructured | l1_structured (whole neurons)
    prune_finetune_epochs: int = 0  # epochs of fine-tuning with the pruning mask on
    distill_teacher: str = "none"  # none | fold | an MLflow model URI (models:/..., runs:/...)
    distill_temperature: float = 2.0  # T: the soft targets are the teacher's p^(1/T), renormalised
    distill_alpha: float = 0.5  # weight of the soft (teacher) term; 1 - alpha: the labels'
    distill_teacher_width: int = 128  # fold: the teacher MLP's width per hidden layer
    distill_teacher_layers: int = 2  # fold: the teacher MLP's hidden layers

    def layer_widths(self) -> list[int]:
        return [
            self.widths[i] if i < len(self.widths) else self.width for i in range(self.n_layers)
        ]

    def check(self) -> MLPKnobs:
        """Refuse a setting torch would reject later, or silently misread (SettingError)."""
        choices = {
            "activation": tuple(ACTIVATIONS),
            "norm": NORMS,
            "init": INITS,
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "quantize": QUANTIZE,
            "prune_kind": PRUNE_KINDS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SettingError(name, getattr(self, name), f"one of {', '.join(allowed)}")
        for f in fields(MLPKnobs):
            value = getattr(self, f.name)
            if isinstance(f.default, bool) and not isinstance(value, bool):
                raise SettingError(f.name, value, "true or false")
            if isinstance(f.default, int) and not isinstance(f.default, bool) and not is_int(value):
                raise SettingError(f.name, value, "a whole number")
            if isinstance(f.default, float) and not is_number(value):
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
        self.check_compression()
        return self

    def check_compression(self) -> None:
        """Refuse a compression knob out of range, a malformed teacher, QAT it cannot run."""
        if not is_teacher(self.distill_teacher):
            raise SettingError(
                "distill_teacher",
                self.distill_teacher,
                "none, fold, or an MLflow model URI (models:/NAME/VERSION, runs:/RUN_ID/PATH)",
            )
        if not 0.0 <= self.prune_amount < 1.0:
            raise SettingError("prune_amount", self.prune_amount, "a number in [0, 1)")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise SettingError("distill_alpha", self.distill_alpha, "a number in [0, 1]")
        if not self.distill_temperature > 0:
            raise SettingError("distill_temperature", self.distill_temperature, "a number > 0")
        for name in ("qat_epochs", "distill_teacher_width", "distill_teacher_layers"):
            if getattr(self, name) < 1:
                raise SettingError(name, getattr(self, name), "a whole number >= 1")
        if self.prune_finetune_epochs < 0:
            raise SettingError(
                "prune_finetune_epochs", self.prune_finetune_epochs, "a whole number >= 0"
            )
        if refused := refusal(self.quantize, self.activation):
            raise SettingError("quantize", self.quantize, *refused)

    def compressed(self) -> bool:
        """True when training is followed by quantization or pruning (the model changes)."""
        return self.quantize != "none" or self.prune_amount > 0


class SettingError(ValueError):
    """A knob's value the MLP cannot train with: its ``key``, ``value``, what it must be,
    and the ``fix`` where that is not simply "set it to what it must be"."""

    def __init__(self, key: str, value: Any, wanted: str, fix: str | None = None) -> None:
        super().__init__(f"MLP {key}={value!r} is not {wanted}" + (f": {fix}" if fix else ""))
        self.key, self.value, self.wanted, self.fix = key, value, wanted, fix


def is_int(value: Any) -> bool:
    """A whole number (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
