"""The study's metric on one fixed set of rows, cheap enough to compute every epoch.

An objective that reports per epoch scores the same inner-split rows once per
epoch. scikit-learn's metric functions spend about 2 ms a call checking their
input (type_of_target, unique_labels), as long as a tenth of a small MLP's
epoch. The metrics that are a function of the confusion matrix, or of the
residuals, are computed here with numpy in microseconds, by the definitions
hpo.metrics uses (binary: class 1; multi-class: macro mean over the classes
present in the labels or the predictions; zero_division=0);
tests/objectives/test_epoch_metric.py checks they equal hpo.metrics. Any
other metric is the study's own function, with scikit-learn's input checks
off.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import sklearn

from objectives.base import Score

EpochScore = Callable[[np.ndarray], float]  # scores of the fixed rows -> metric value


def epoch_metric(metric: Score, y_true: np.ndarray) -> EpochScore:
    """``metric(y_true, scores)`` as a function of the scores alone, fast where it can be."""
    name = str(getattr(metric, "name", ""))
    y = np.asarray(y_true)
    if name in _FROM_CONFUSION and _are_class_ids(y):
        return _ConfusionScore(_FROM_CONFUSION[name], y.astype(np.int64))
    if name in _FROM_ERRORS:
        errors, y_float = _FROM_ERRORS[name], y.astype(np.float64)
        return lambda scores: errors(y_float, np.asarray(scores, dtype=np.float64))

    def checked_once(scores: np.ndarray) -> float:
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return float(metric(y, scores))

    return checked_once


def _are_class_ids(y: np.ndarray) -> bool:
    return y.ndim == 1 and len(y) > 0 and np.issubdtype(y.dtype, np.integer) and y.min() >= 0


class _ConfusionScore:
    """A label metric from the confusion matrix of fixed labels and the scores' predictions."""

    def __init__(self, formula: Callable[[np.ndarray, bool], float], y: np.ndarray) -> None:
        self.formula = formula
        self.y = y

    def __call__(self, scores: np.ndarray) -> float:
        scores = np.asarray(scores)
        multiclass = scores.ndim == 2
        predicted = scores.argmax(axis=1) if multiclass else (scores >= 0.5).astype(np.int64)
        k = max(scores.shape[1] if multiclass else 2, int(self.y.max()) + 1)
        cm = np.bincount(self.y * k + predicted, minlength=k * k).reshape(k, k)
        return float(self.formula(cm, multiclass))


def _per_class(cm: np.ndarray, multiclass: bool, num: np.ndarray, den: np.ndarray) -> float:
    """num / den per class (0 where den is 0): class 1's, or the macro mean over present classes."""
    ratio = np.divide(num, den, out=np.zeros(len(num)), where=den > 0)
    if not multiclass:
        return float(ratio[1])
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(ratio[present].mean())


def _accuracy(cm: np.ndarray, multiclass: bool) -> float:
    return float(np.trace(cm) / cm.sum())


def _precision(cm: np.ndarray, multiclass: bool) -> float:
    return _per_class(cm, multiclass, np.diag(cm), cm.sum(axis=0))


def _recall(cm: np.ndarray, multiclass: bool) -> float:
    return _per_class(cm, multiclass, np.diag(cm), cm.sum(axis=1))


def _f1(cm: np.ndarray, multiclass: bool) -> float:
    return _per_class(cm, multiclass, 2 * np.diag(cm), cm.sum(axis=0) + cm.sum(axis=1))


def _specificity(cm: np.ndarray, multiclass: bool) -> float:
    """TN / (TN + FP) per class, 1 where a class has no negatives (as hpo.metrics)."""
    tp, predicted, actual = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    tn = cm.sum() - predicted - actual + tp
    fp = predicted - tp
    ratio = np.divide(tn, tn + fp, out=np.ones(len(tn)), where=(tn + fp) > 0)
    if not multiclass:
        return float(ratio[1])
    present = (predicted + actual) > 0
    return float(ratio[present].mean())


def _balanced_accuracy(cm: np.ndarray, multiclass: bool) -> float:
    """The mean recall over the classes in the labels (scikit-learn's definition)."""
    actual = cm.sum(axis=1)
    return float((np.diag(cm)[actual > 0] / actual[actual > 0]).mean())


def _mse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((y - p) ** 2))


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return math.sqrt(_mse(y, p))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y - p)))


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    """1 - SSres / SStot; scikit-learn's 1.0 (perfect) or 0.0 when the labels are constant."""
    residual = float(np.sum((y - p) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


_FROM_CONFUSION: dict[str, Callable[[np.ndarray, bool], float]] = {
    "accuracy": _accuracy,
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "specificity": _specificity,
    "balanced_accuracy": _balanced_accuracy,
}
_FROM_ERRORS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mse": _mse,
    "rmse": _rmse,
    "mae": _mae,
    "r2": _r2,
}
