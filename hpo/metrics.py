"""The metric registry: names to scikit-learn functions, with what each needs.

Objectives return *scores*: the probability of class 1 for binary tasks, an
(n, k) probability matrix for multi-class tasks, the prediction itself for
regression. A metric that needs labels turns scores into labels here (0.5
threshold or argmax), so every objective is scored the same way.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from hpo.errors import UserError

Task = Literal["classification", "regression"]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Metric:
    """A named score: its function, what it reads, which way is better, for which task."""

    name: str
    fn: Callable[..., float]
    needs: Literal["labels", "scores", "values"]
    direction: Direction
    task: Task

    def __call__(self, y_true: np.ndarray, scores: np.ndarray) -> float:
        scores = np.asarray(scores)
        y_pred = to_labels(scores) if self.needs == "labels" else scores
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.name in _AVERAGED:  # binary or macro is decided by the scores' shape
                return float(self.fn(np.asarray(y_true), y_pred, multiclass=scores.ndim == 2))
            return float(self.fn(np.asarray(y_true), y_pred))


def to_labels(scores: np.ndarray) -> np.ndarray:
    """Class labels from scores: argmax of a probability matrix, else p >= 0.5."""
    scores = np.asarray(scores)
    if scores.ndim == 2:
        return scores.argmax(axis=1)
    return (scores >= 0.5).astype(int)


def _average(multiclass: bool) -> str:
    """Binary tasks score the positive class 1; multi-class tasks take the macro mean."""
    return "macro" if multiclass else "binary"


def _precision(y: np.ndarray, p: np.ndarray, multiclass: bool) -> float:
    return skm.precision_score(y, p, average=_average(multiclass), zero_division=0)


def _recall(y: np.ndarray, p: np.ndarray, multiclass: bool) -> float:
    return skm.recall_score(y, p, average=_average(multiclass), zero_division=0)


def _f1(y: np.ndarray, p: np.ndarray, multiclass: bool) -> float:
    return skm.f1_score(y, p, average=_average(multiclass), zero_division=0)


def _specificity(y: np.ndarray, p: np.ndarray, multiclass: bool) -> float:
    """True-negative rate TN / (TN + FP) of class 1; the one-vs-rest macro mean for multi-class."""
    labels = np.union1d(np.unique(y), np.unique(p)) if multiclass else np.array([0, 1])
    cm = skm.multilabel_confusion_matrix(y, p, labels=labels)
    tn, fp = cm[:, 0, 0], cm[:, 0, 1]
    per_class = np.divide(tn, tn + fp, out=np.ones(len(labels)), where=(tn + fp) > 0)
    return float(per_class.mean()) if multiclass else float(per_class[1])


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    if s.ndim == 2:
        return skm.roc_auc_score(y, s, multi_class="ovr", average="macro")
    return skm.roc_auc_score(y, s)


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    if s.ndim == 2:
        return skm.average_precision_score(
            label_binarize(y, classes=range(s.shape[1])), s, average="macro"
        )
    return skm.average_precision_score(y, s)


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return skm.root_mean_squared_error(y, p)


def _smape(y: np.ndarray, p: np.ndarray) -> float:
    """Symmetric MAPE in [0, 2]; a pair of zeros counts as a perfect prediction."""
    denom = np.abs(y) + np.abs(p)
    ratio = np.divide(2 * np.abs(p - y), denom, out=np.zeros(len(y)), where=denom > 0)
    return float(ratio.mean())


def _huber(y: np.ndarray, p: np.ndarray, delta: float = 1.0) -> float:
    """Mean Huber loss: squared for errors under ``delta``, linear beyond (robust to outliers)."""
    err = np.abs(y - p)
    return float(np.where(err <= delta, 0.5 * err**2, delta * (err - 0.5 * delta)).mean())


_AVERAGED = {"precision", "recall", "f1", "specificity"}
_C: Task = "classification"
_R: Task = "regression"
REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", skm.accuracy_score, "labels", "maximize", _C),
        Metric("precision", _precision, "labels", "maximize", _C),
        Metric("recall", _recall, "labels", "maximize", _C),
        Metric("f1", _f1, "labels", "maximize", _C),
        Metric("specificity", _specificity, "labels", "maximize", _C),
        Metric("balanced_accuracy", skm.balanced_accuracy_score, "labels", "maximize", _C),
        Metric("cohen_kappa", skm.cohen_kappa_score, "labels", "maximize", _C),
        Metric("mcc", skm.matthews_corrcoef, "labels", "maximize", _C),
        Metric("roc_auc", _roc_auc, "scores", "maximize", _C),
        Metric("average_precision", _average_precision, "scores", "maximize", _C),
        Metric("log_loss", skm.log_loss, "scores", "minimize", _C),
        Metric("mse", skm.mean_squared_error, "values", "minimize", _R),
        Metric("rmse", _rmse, "values", "minimize", _R),
        Metric("mae", skm.mean_absolute_error, "values", "minimize", _R),
        Metric("r2", skm.r2_score, "values", "maximize", _R),
        Metric("mape", skm.mean_absolute_percentage_error, "values", "minimize", _R),
        Metric("smape", _smape, "values", "minimize", _R),
        Metric("huber", _huber, "values", "minimize", _R),
    ]
}


def get_metric(name: str, task: Task | None = None) -> Metric:
    """The registered metric ``name``; a UserError listing the valid names otherwise."""
    metric = REGISTRY.get(name)
    valid = [m.name for m in REGISTRY.values() if task is None or m.task == task]
    if metric is None or (task is not None and metric.task != task):
        what = (
            f"unknown metric '{name}'" if metric is None else f"metric '{name}' is not for {task}"
        )
        raise UserError(f"{what}: set study.metric to one of {', '.join(valid)}")
    return metric


def metrics_for(task: Task) -> list[Metric]:
    return [m for m in REGISTRY.values() if m.task == task]


def score_all(
    task: Task, y_true: np.ndarray, scores: np.ndarray, only: tuple[str, ...] = ()
) -> dict[str, float]:
    """Every metric of the task (or those named in ``only``) on one set of predictions;
    undefined ones are left out. ``hpo.estimates.fast_scores.score_once`` is the fast form."""
    out: dict[str, float] = {}
    for metric in metrics_for(task):
        if only and metric.name not in only:
            continue
        try:
            value = metric(y_true, scores)
        except ValueError:  # e.g. ROC-AUC on a fold with a single class
            continue
        if math.isfinite(value):
            out[metric.name] = value
    return out


def confusion(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The confusion matrix (rows: true class, columns: predicted)."""
    return skm.confusion_matrix(y_true, to_labels(scores))
