"""The registry's metrics for every bootstrap sample at once, exactly.

A sample drawn with replacement is its rows weighted by how often each was
drawn, so the registry's metrics (``hpo.metrics``) that are functions of
per-class counts (accuracy, precision, recall, F1, specificity, balanced
accuracy, MCC), of a mean of per-row losses (MSE, RMSE, MAE, MAPE, sMAPE,
Huber, log loss) or of a binary ranking (ROC AUC, average precision) are
computed from the weights by matrix products, and give the values the metric
gives on the rows as drawn (``tests/hpo/estimates/test_fast_scores.py``
compares each with the metric). ``fast_scorer`` returns None for the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hpo.estimates.scoring import CELLS, MetricFn, Scorer
from hpo.metrics import Metric, Task, metrics_for, score_all, to_labels


def fast_scorer(metric: MetricFn, y: np.ndarray, oof: np.ndarray) -> Scorer | None:
    """A vectorised scorer giving the same values as ``metric``, or None when there is none.

    Only the registry's metrics (``hpo.metrics.Metric``) whose value is a function of
    per-class counts, of a mean of per-row losses, or of a binary ranking; only on finite
    predictions and, for classification, class codes 0..k-1.
    """
    if not isinstance(metric, Metric) or not np.isfinite(oof).all():
        return None
    n_classes = oof.shape[2] if oof.ndim == 3 else 2
    codes = _class_codes(y, n_classes) if metric.task == "classification" else None
    if metric.task == "classification" and codes is None:
        return None
    if metric.name in _COUNTS and codes is not None:
        labels = np.stack([to_labels(o) for o in oof])
        return _counts_scorer(metric.name, codes, labels, n_classes, oof.ndim == 3)
    if metric.name in _ROW_LOSSES and (metric.task == "classification" or oof.ndim == 2):
        if metric.name == "log_loss" and not ((oof >= 0).all() and (oof <= 1).all()):
            return None  # log_loss refuses probabilities outside [0, 1]
        target = y.astype(float) if codes is None else codes
        return _loss_scorer(metric.name, _ROW_LOSSES[metric.name](target, oof), codes, n_classes)
    if metric.name in _RANKINGS and codes is not None and oof.ndim == 2:
        return _ranking_scorer(_RANKINGS[metric.name], codes == 1, oof)
    return None


def score_once(task: Task, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``hpo.metrics.score_all``'s values, vectorised where ``fast_scorer`` can.

    Every trial's out-of-fold scores are scored with every metric of the task; through
    scikit-learn's input validation that is about 17 ms for the 11 classification
    metrics, against 2 ms here (benchmarks/overhead.py). The metrics with no fast form
    (Cohen's kappa, R², multi-class rankings) are called as they are.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    rows, weights = np.arange(len(y_true)), np.ones((1, len(y_true)))
    out: dict[str, float] = {}
    for metric in metrics_for(task):
        scorer = fast_scorer(metric, y_true, scores[None])
        value = np.nan
        if scorer is not None:
            value = float(scorer(rows, weights, np.zeros((1, 1), dtype=np.int64))[0, 0])
        if np.isfinite(value):
            out[metric.name] = value
        else:  # no fast form, or a degenerate case the metric itself settles
            out |= score_all(task, y_true, scores, only=(metric.name,))
    return out


def _class_codes(y: np.ndarray, n_classes: int) -> np.ndarray | None:
    """``y`` as integer class codes 0..n_classes-1, or None when it is not."""
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        return None
    codes = y.astype(np.int64)
    if not np.array_equal(codes, y) or codes.min() < 0 or codes.max() >= n_classes:
        return None
    return codes


def _one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    return (codes[..., None] == np.arange(n_classes)).astype(float)


def _divide(a: np.ndarray, b: np.ndarray, default: float) -> np.ndarray:
    """a / b, ``default`` where b is 0 (sklearn's ``zero_division``)."""
    a, b = np.broadcast_arrays(a, b)
    return np.divide(a, b, out=np.full(a.shape, default), where=b != 0)


def _counts_scorer(
    name: str, codes: np.ndarray, labels: np.ndarray, n_classes: int, multiclass: bool
) -> Scorer:
    """Metrics of the weighted confusion counts: per class the true count t, predicted count
    p and hits tp (B, C, K), from which every cell of the confusion matrix follows."""

    def score(rows: np.ndarray, weights: np.ndarray, configs: np.ndarray) -> np.ndarray:
        truth = _one_hot(codes[rows], n_classes)
        n = weights.sum(axis=1)[:, None]  # (B, 1)
        t = (weights @ truth)[:, None, :]  # (B, 1, K)
        # few large products: many small ones crawl on a busy multi-threaded BLAS
        step = max(1, CELLS // (len(rows) * 2 * n_classes))
        counts = np.concatenate(
            [
                weights @ _predicted_and_hits(labels[c : c + step, rows], truth)
                for c in range(0, len(labels), step)
            ],
            axis=1,
        )
        p, tp = np.split(counts.reshape(len(weights), len(labels), 2 * n_classes), 2, axis=2)
        values = _from_counts(name, n, t, p, tp, multiclass)
        values[n[:, 0] == 0] = np.nan
        return np.take_along_axis(values, configs, axis=1)

    return score


def _predicted_and_hits(labels: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(n, C * 2K): per configuration, the one-hot predicted class, then the same where it
    is the true class (``truth``, (n, K))."""
    predicted = _one_hot(labels, truth.shape[1])  # (C, n, K)
    both = np.concatenate([predicted, predicted * truth], axis=2)
    return both.transpose(1, 0, 2).reshape(len(truth), -1)


def _from_counts(
    name: str, n: np.ndarray, t: np.ndarray, p: np.ndarray, tp: np.ndarray, multiclass: bool
) -> np.ndarray:
    """The metric from the counts, as scikit-learn (and ``hpo.metrics``) compute it: binary
    scores are of class 1, macro means are over the classes present in truth or prediction."""
    if name == "accuracy":
        return _divide(tp.sum(axis=2), n, np.nan)
    if name == "balanced_accuracy":  # recall of each class present in the truth
        return _divide(_divide(tp, t, 0.0).sum(axis=2), (t > 0).sum(axis=2), np.nan)
    if name == "mcc":
        cov_tp = tp.sum(axis=2) * n - (t * p).sum(axis=2)
        cov_pp, cov_tt = n**2 - (p**2).sum(axis=2), n**2 - (t**2).sum(axis=2)
        product = cov_pp * cov_tt
        return _divide(cov_tp, np.sqrt(product), 0.0)
    if name == "precision":
        per_class = _divide(tp, p, 0.0)
    elif name == "recall":
        per_class = _divide(tp, t, 0.0)
    elif name == "f1":
        per_class = _divide(2 * tp, t + p, 0.0)
    else:  # specificity: true negatives over negatives, 1 without negatives (hpo.metrics)
        per_class = _divide(n[:, :, None] - t - p + tp, n[:, :, None] - t, 1.0)
    if not multiclass:
        return per_class[:, :, 1]
    present = (t + p) > 0
    return _divide(np.where(present, per_class, 0.0).sum(axis=2), present.sum(axis=2), np.nan)


_COUNTS = {"accuracy", "balanced_accuracy", "mcc", "precision", "recall", "f1", "specificity"}


def _log_loss_rows(codes: np.ndarray, oof: np.ndarray) -> np.ndarray:
    """-log of the clipped probability of the true class (sklearn clips to [eps, 1 - eps])."""
    eps = np.finfo(float).eps
    if oof.ndim == 2:
        truth = np.where(codes == 1, oof, 1 - oof)
    else:
        truth = oof[:, np.arange(len(codes)), codes]
    return -np.log(np.clip(truth, eps, 1 - eps))


def _huber_rows(y: np.ndarray, oof: np.ndarray, delta: float = 1.0) -> np.ndarray:
    err = np.abs(y - oof)
    return np.where(err <= delta, 0.5 * err**2, delta * (err - 0.5 * delta))


def _smape_rows(y: np.ndarray, oof: np.ndarray) -> np.ndarray:
    denom = np.abs(y) + np.abs(oof)
    return _divide(2 * np.abs(oof - y), denom, 0.0)


_ROW_LOSSES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mse": lambda y, o: (o - y) ** 2,
    "rmse": lambda y, o: (o - y) ** 2,  # the root is taken of the mean
    "mae": lambda y, o: np.abs(o - y),
    "mape": lambda y, o: np.abs(o - y) / np.maximum(np.abs(y), np.finfo(float).eps),
    "smape": _smape_rows,
    "huber": _huber_rows,
    "log_loss": _log_loss_rows,
}


def _loss_scorer(name: str, losses: np.ndarray, codes: np.ndarray | None, n_classes: int) -> Scorer:
    """Metrics that are the weighted mean of per-row losses (C, n); log loss is undefined
    unless every class is in the sample (sklearn refuses it otherwise)."""

    def score(rows: np.ndarray, weights: np.ndarray, configs: np.ndarray) -> np.ndarray:
        n = weights.sum(axis=1)[:, None]
        values = _divide(weights @ losses[:, rows].T, n, np.nan)
        if name == "rmse":
            values = np.sqrt(values)
        if codes is not None:
            every_class = ((weights @ _one_hot(codes[rows], n_classes)) > 0).all(axis=1)
            values[~every_class] = np.nan
        return np.take_along_axis(values, configs, axis=1)

    return score


def _roc_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC from the positive and negative weight of each distinct score
    (B, G), highest score first; ties count one half (the area under sklearn's ROC curve)."""
    below = neg.sum(axis=1, keepdims=True) - np.cumsum(neg, axis=1)
    area = (pos * (below + 0.5 * neg)).sum(axis=1)
    return _divide(area, pos.sum(axis=1) * neg.sum(axis=1), np.nan)


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """The sum over thresholds of recall gained times precision (sklearn's step integral)."""
    hits, alarms = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    area = (pos * _divide(hits, hits + alarms, 0.0)).sum(axis=1)
    both = (pos.sum(axis=1) > 0) & (neg.sum(axis=1) > 0)  # needs two classes, as ROC AUC
    return np.where(both, _divide(area, pos.sum(axis=1), np.nan), np.nan)


_RANKINGS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": _roc_auc,
    "average_precision": _average_precision,
}


def _ranking_scorer(
    metric: Callable[[np.ndarray, np.ndarray], np.ndarray], positive: np.ndarray, oof: np.ndarray
) -> Scorer:
    """Binary ranking metrics: each configuration's rows sorted by score, the sample's weights
    summed per distinct score (only for the samples that ask for the configuration)."""

    def score(rows: np.ndarray, weights: np.ndarray, configs: np.ndarray) -> np.ndarray:
        out = np.full(configs.shape, np.nan)
        for config in np.unique(configs):
            chosen = configs == config
            w = weights[chosen.any(axis=1)]
            order = np.argsort(-oof[config, rows], kind="stable")
            sorted_scores, is_pos = oof[config, rows[order]], positive[rows[order]]
            starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
            pos = np.add.reduceat(w[:, order] * is_pos, starts, axis=1)
            neg = np.add.reduceat(w[:, order] * ~is_pos, starts, axis=1)
            out[chosen] = metric(pos, neg)
        return out

    return score
