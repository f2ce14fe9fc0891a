"""A PyTorch multi-layer perceptron with every knob a practitioner tunes, pruned per epoch.

Inside a fold, the training rows are split once more: the model trains on
one part and early-stops (and reports to the pruner) on the other, so the
fold being scored stays unseen, as in objectives/xgboost.py. Each fold draws
from its own ``torch.Generator`` seeded with ``FoldData.seed`` (initial
weights, batch order, dropout masks), so a trial is reproducible even when
folds train side by side in threads. The knobs are in knobs.py, the module
in network.py, the training in training.py; the fit/refit frame is
objectives/torch_fit.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from objectives.base import BadSetting, FoldData, Reporter
from objectives.mlp.knobs import (
    PER_LAYER_WIDTH,
    TASKS,
    MLPKnobs,
    SettingError,
    is_int,
    is_number,
)
from objectives.mlp.network import Pipeline, build_network, predict_scores
from objectives.mlp.training import InnerValidation, train
from objectives.torch_fit import EarlyStopping, Epochs, FoldFit, TorchObjective


@dataclass
class MLPObjective(MLPKnobs, TorchObjective[MLPKnobs]):
    """An MLP for classification (binary or multi-class) or regression; see the module docs."""

    task: str = "classification"
    inner_valid_fraction: float = 0.2
    # Cap on torch threads per fit (0: the harness's share, FoldData.threads). Small MLPs
    # are bound by per-op overhead: one thread beats two by far on a small shared machine
    # (threads spin waiting for each other).
    max_threads: int = 1
    flavor: str = "pytorch"
    requirements = ("torch",)
    fit_fact_names = ("epochs_run", "best_epoch", "n_params")

    def knobs(self, params: dict[str, Any]) -> MLPKnobs:
        """This objective's defaults overridden by a trial's params."""
        base = MLPKnobs(**{f.name: getattr(self, f.name) for f in fields(MLPKnobs)})
        known = {f.name for f in fields(MLPKnobs)}
        settings: dict[str, Any] = {}
        widths: dict[int, int] = {}
        for name, value in params.items():
            if match := PER_LAYER_WIDTH.fullmatch(name):
                if not is_int(value) or value < 1:
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
        if not (is_number(self.inner_valid_fraction) and 0 < self.inner_valid_fraction < 1):
            raise BadSetting(
                f"study.objective.inner_valid_fraction={self.inner_valid_fraction!r} is not "
                "in (0, 1): set it to the share of each training fold to stop on, e.g. 0.2"
            )
        if not is_int(self.max_threads) or self.max_threads < 0:
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
        known = {f.name for f in fields(MLPKnobs)} - {"widths"}
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

    def epoch_budget(self, knobs: MLPKnobs) -> int:
        return knobs.max_epochs

    def fit_fold(self, knobs: MLPKnobs, fold: FoldData, report: Reporter | None) -> FoldFit:
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
        inner = InnerValidation(model, X_stop, y_stop, fold.metric)
        stop = EarlyStopping(inner, knobs.max_epochs, report, knobs.patience, fold.stopped)
        history = train(model, knobs, X_fit, y_fit, generator, stop)
        n_params = float(sum(p.numel() for p in model.parameters()))
        return FoldFit(predict_scores(model, fold.X_valid), history, stop, {"n_params": n_params})

    def fit_all(
        self, knobs: MLPKnobs, X: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, seed: int
    ) -> Pipeline:
        """All rows for ``epochs`` epochs; the learning-rate schedule still spans max_epochs."""
        generator = torch.Generator().manual_seed(seed)
        model = self._pipeline(knobs, X, y, n_classes, generator)
        train(model, knobs, X, y, generator, Epochs(epochs))
        return model

    def predict(self, model: Pipeline, X: np.ndarray) -> np.ndarray:
        return predict_scores(model, X)

    def _pipeline(
        self,
        knobs: MLPKnobs,
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
