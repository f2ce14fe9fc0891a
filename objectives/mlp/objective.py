"""A PyTorch multi-layer perceptron with every knob a practitioner tunes, pruned per epoch.

Inside a fold, the training rows are split once more: the model trains on
one part and early-stops (and reports to the pruner) on the other, so the
fold being scored stays unseen, as in objectives/xgboost.py. Each fold draws
from its own ``torch.Generator`` seeded with ``FoldData.seed`` (initial
weights, batch order, dropout masks), so a trial is reproducible even when
folds train side by side in threads. The knobs are in knobs.py, the module
in network.py, the training in training.py; the fit/refit frame is
objectives/torch_fit.py's.

Compression (compress.py: quantization, pruning) follows training in every
fold and in the refit: the fold is scored and measured as compressed (the
serving facts of objectives/compression/measure.py), the scores of the model
before compression kept as the reference its metric drop is judged against
(hpo/cv.py), and the refit model, the one logged, is compressed the same way.
A distilled student (``distill_teacher``) trains on a teacher's soft targets
for the rows it trains on; a ``fold`` teacher is trained on the fold's
training rows only (the refit's on all rows), once per fold for the whole
study (``FOLD_TEACHERS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from objectives.base import BadSetting, FoldData, Reporter, Score
from objectives.compression.distill import (
    Distillation,
    TeacherCache,
    fingerprint,
    uri_teacher_scores,
)
from objectives.compression.measure import FACTS as SERVING_FACTS
from objectives.compression.measure import measure
from objectives.mlp.compress import Finetune, compress
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
from objectives.torch_fit import EarlyStopping, Epochs, FoldFit, History, TorchObjective

# Besides the serving facts every fold measures (SERVING_FACTS): the metric of the model
# before compression and its drop, which hpo/cv.py adds from the folds' reference scores.
DROP_FACTS = ("metric_uncompressed", "metric_drop")
FOLD_TEACHERS = TeacherCache()  # distill_teacher=fold: one teacher per fold (rows, seed, knobs)


@dataclass
class Trained:
    """A model trained with early stopping, and how to train it further in the same way."""

    model: Pipeline
    history: History
    stop: EarlyStopping
    finetune: Finetune  # more epochs on the same rows, teacher included (compression's)


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
    fit_fact_names = ("epochs_run", "best_epoch", "n_params", *SERVING_FACTS, *DROP_FACTS)

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
        knobs.check()
        if self.task == "regression" and knobs.distill_teacher != "none":
            raise SettingError(
                "distill_teacher",
                knobs.distill_teacher,
                "none for regression",
                "distillation learns from a teacher's class probabilities, which a "
                "regression has none of: set distill_teacher to none",
            )
        return knobs

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
            fix = err.fix or f"set study.objective.{err.key} to {err.wanted}"
            raise BadSetting(
                f"study.objective.{err.key}={err.value!r} is not {err.wanted}: {fix}"
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
                    raise BadSetting(_space_refusal(name, value, err)) from None

    def epoch_budget(self, knobs: MLPKnobs) -> int:
        return knobs.max_epochs

    def fit_fold(self, knobs: MLPKnobs, fold: FoldData, report: Reporter | None) -> FoldFit:
        """Train, keep the validation scores as they are (the reference), compress, measure."""
        X, y = fold.X_train, fold.y_train
        fit = self._train(knobs, X, y, fold.n_classes, fold.seed, fold.metric, report, fold.stopped)
        n_params = float(sum(p.numel() for p in fit.model.parameters()))
        reference = predict_scores(fit.model, fold.X_valid)
        served = compress(fit.model, knobs, fit.finetune)
        scores = predict_scores(served, fold.X_valid) if knobs.compressed() else reference
        facts = {"n_params": n_params, **measure(served, fold.X_valid)}
        return FoldFit(scores, fit.history, fit.stop, facts, reference)

    def fit_all(
        self, knobs: MLPKnobs, X: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, seed: int
    ) -> Pipeline:
        """All rows for ``epochs`` epochs (the schedule still spans max_epochs), then compressed."""
        generator = torch.Generator().manual_seed(seed)
        model = self._pipeline(knobs, X, y, n_classes, generator)
        distill = self._distillation(knobs, X, X, y, n_classes, seed)

        def finetune(model: Pipeline, epochs: int) -> History:
            return train(model, knobs, X, y, generator, Epochs(epochs), distill)

        finetune(model, epochs)
        return compress(model, knobs, finetune)

    def _train(
        self,
        knobs: MLPKnobs,
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        seed: int,
        metric: Score | None = None,
        report: Reporter | None = None,
        stopped: Callable[[], bool] = lambda: False,
    ) -> Trained:
        """Train on part of ``X``/``y``, early-stopping on the rest (a fold's training rows, or
        a fold teacher's)."""
        stratify = y if self.task == "classification" else None
        X_fit, X_stop, y_fit, y_stop = train_test_split(
            X, y, test_size=self.inner_valid_fraction, random_state=seed, stratify=stratify
        )
        generator = torch.Generator().manual_seed(seed)
        model = self._pipeline(knobs, X, y_fit, n_classes, generator)
        distill = self._distillation(knobs, X_fit, X, y, n_classes, seed)
        inner = InnerValidation(model, X_stop, y_stop, metric)
        stop = EarlyStopping(inner, knobs.max_epochs, report, knobs.patience, stopped)
        history = train(model, knobs, X_fit, y_fit, generator, stop, distill)

        def finetune(model: Pipeline, epochs: int) -> History:
            return train(model, knobs, X_fit, y_fit, generator, Epochs(epochs), distill)

        return Trained(model, history, stop, finetune)

    def _distillation(
        self,
        knobs: MLPKnobs,
        X_fit: np.ndarray,
        X_teacher: np.ndarray,
        y_teacher: np.ndarray,
        n_classes: int,
        seed: int,
    ) -> Distillation | None:
        """The teacher's soft targets for the rows ``X_fit`` the student trains on (None: no
        teacher). A fold teacher trains on ``X_teacher``/``y_teacher``: the fold's training
        rows, never its validation rows."""
        if knobs.distill_teacher == "none":
            return None
        if knobs.distill_teacher == "fold":
            teacher_knobs = self._teacher_knobs(knobs)
            rows = fingerprint(X_teacher, y_teacher)
            key = (rows, n_classes, seed, repr(teacher_knobs), self.inner_valid_fraction)
            teacher = FOLD_TEACHERS.get(
                key, lambda: self._train(teacher_knobs, X_teacher, y_teacher, n_classes, seed).model
            )
            scores = predict_scores(teacher, X_fit)
        else:
            scores = uri_teacher_scores(knobs.distill_teacher, X_fit)
        return Distillation.of(scores, n_classes, knobs.distill_temperature, knobs.distill_alpha)

    def _teacher_knobs(self, knobs: MLPKnobs) -> MLPKnobs:
        """A fold teacher's knobs: the study's fixed settings, not the trial's (every trial
        shares one teacher per fold), at the teacher's width and depth, uncompressed."""
        return replace(
            self.knobs({}),
            n_layers=knobs.distill_teacher_layers,
            width=knobs.distill_teacher_width,
            widths=(),
            quantize="none",
            prune_amount=0.0,
            distill_teacher="none",
        )

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


def _space_refusal(name: str, value: Any, err: SettingError) -> str:
    """One line: the space's value of ``name`` the MLP refuses, and how to fix the space."""
    if err.key == name and err.fix is None:
        return (
            f"study.space.{name} offers {name}={value!r}, which is not {err.wanted}: "
            f"change study.space.{name} so that every value is {err.wanted}"
        )
    if err.key == name:
        return f"study.space.{name} offers {name}={value!r}, which is not {err.wanted}: {err.fix}"
    return (
        f"study.space.{name} offers {name}={value!r}, but then {err.key}={err.value!r} is "
        f"not {err.wanted}: {err.fix or f'change study.space.{name}'}"
    )
