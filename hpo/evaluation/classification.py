"""The report of a classification task: confusion matrix, ROC, precision-recall, calibration.

Scores follow hpo/metrics.py: P(class 1) for binary tasks, an (n, k) probability
matrix for multi-class tasks (labels 0..k-1). A binary task calls class 1 at a
threshold, 0.5 or one chosen by cost (hpo/evaluation/threshold.py); a multi-class
task takes the argmax and plots each class against the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import plotly.graph_objects as go
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from hpo.evaluation.report import DIAGONAL, Report, layout, mark, scored, table
from hpo.evaluation.threshold import Threshold, binary, confusion, cost_figure
from hpo.metrics import metrics_for

CALIBRATION_BINS = 10
_PER_CLASS = {"precision", "recall", "f1", "specificity"}  # of class 1, or a macro mean


def classification_report(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float | Threshold = 0.5,
    class_names: Sequence[str] | None = None,
    source: str = "out-of-fold predictions",
) -> Report:
    """Confusion matrix, ROC, precision-recall, calibration and the metrics table.

    Binary tasks call class 1 at ``threshold`` (a ``Threshold`` adds its cost curve);
    multi-class tasks take the argmax and plot each class against the rest.
    ``source`` says where the predictions come from, in every title.
    """
    scores = np.asarray(scores, dtype=float)
    multiclass = scores.ndim == 2
    if multiclass:
        if isinstance(threshold, Threshold) or threshold != 0.5:
            raise ValueError("a threshold is for binary tasks; multi-class tasks take the argmax")
        y = np.asarray(y_true).astype(int)
        labels = scores.argmax(axis=1)
        at = "argmax"
    else:
        y, scores = binary(y_true, scores)
        cut = threshold.value if isinstance(threshold, Threshold) else float(threshold)
        labels = (scores >= cut).astype(int)
        at = f"threshold {cut:.3g}"
    k = scores.shape[1] if multiclass else 2
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    where = f"{source}, {len(y)} rows"
    metrics = scored(metrics_for("classification"), y, scores, None if multiclass else labels)
    figures = {
        "confusion_matrix": _confusion_figure(confusion(y, labels, k), names, at, where),
        "roc": _roc_figure(y, scores, labels, names, metrics, at, where),
        "precision_recall": _pr_figure(y, scores, labels, names, metrics, at, where),
        "calibration": _calibration_figure(y, scores, names, where),
        "metrics": table(metrics, _metric_labels(names, multiclass), f"Metrics at {at}", where),
    }
    if isinstance(threshold, Threshold):
        figures["cost"] = cost_figure(threshold, where)
    return Report(metrics, figures)


def _class(names: list[str], c: int) -> str:
    return f"class {c}" if names[c] == str(c) else f"class {c} ({names[c]})"


def _metric_labels(names: list[str], multiclass: bool) -> dict[str, str]:
    if multiclass:
        of, ovr = f"macro over {len(names)} classes", "macro, one vs rest"
        return {m: f"{m} ({of})" for m in _PER_CLASS} | {
            "roc_auc": f"roc_auc ({ovr})",
            "average_precision": f"average_precision ({ovr})",
        }
    return {m: f"{m} of {_class(names, 1)}" for m in _PER_CLASS}


def _confusion_figure(cm: np.ndarray, names: list[str], at: str, where: str) -> go.Figure:
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    text = [
        [f"{n}<br>{s:.0%}" if n else "0" for n, s in zip(r, q, strict=True)]
        for r, q in zip(cm, share, strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=cm,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            colorbar={"title": {"text": "rows"}},
            hovertemplate="true %{y}, predicted %{x}: %{z} rows<extra></extra>",
        )
    )
    right = int(np.trace(cm))
    what = f"Confusion matrix at {at}: {right} of {cm.sum()} right ({right / cm.sum():.1%})"
    where += "; each cell: rows, and their share of the true class"
    return layout(
        fig,
        what,
        where,
        "predicted class",
        "true class",
        xaxis={"type": "category", "side": "bottom"},
        yaxis={"type": "category", "autorange": "reversed"},
    )


def _one_vs_rest(
    y: np.ndarray, scores: np.ndarray, names: list[str]
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, is class c, P(class c)) per class; binary tasks have class 1 only."""
    if scores.ndim == 1:
        yield _class(names, 1), y == 1, scores
        return
    for c in range(scores.shape[1]):
        if 0 < (y == c).sum() < len(y):  # a curve needs rows in and out of the class
            yield names[c], y == c, scores[:, c]


def _roc_figure(
    y: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    metrics: dict[str, float],
    at: str,
    where: str,
) -> go.Figure:
    fig = go.Figure()
    for name, is_c, p in _one_vs_rest(y, scores, names):
        fpr, tpr, _ = skm.roc_curve(is_c, p)
        fig.add_scatter(x=fpr, y=tpr, mode="lines", name=f"{name}: AUC {skm.auc(fpr, tpr):.3f}")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=DIAGONAL, name="chance")
    if scores.ndim == 1:
        tn, fp, fn, tp = confusion(y, labels).ravel()
        mark(fig, fp / (fp + tn), tp / (tp + fn), f"at {at}")
        what = f"ROC curve of {_class(names, 1)}"
    else:
        what = "ROC curves, each class vs the rest"
    if "roc_auc" in metrics:
        what += f": {'macro ' if scores.ndim == 2 else ''}AUC {metrics['roc_auc']:.3f}"
    return layout(
        fig,
        what,
        where,
        "false-positive rate (1 - specificity)",
        "true-positive rate (recall)",
        xaxis={"range": [-0.01, 1.01]},
        yaxis={"range": [-0.01, 1.01]},
    )


def _pr_figure(
    y: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    metrics: dict[str, float],
    at: str,
    where: str,
) -> go.Figure:
    fig = go.Figure()
    for name, is_c, p in _one_vs_rest(y, scores, names):
        precision, recall, _ = skm.precision_recall_curve(is_c, p)
        ap = skm.average_precision_score(is_c, p)
        fig.add_scatter(x=recall, y=precision, mode="lines", name=f"{name}: AP {ap:.3f}")
    if scores.ndim == 1:
        base = float(y.mean())
        fig.add_scatter(
            x=[0, 1],
            y=[base, base],
            mode="lines",
            line=DIAGONAL,
            name=f"chance: share of class 1, {base:.3f}",
        )
        _, fp, fn, tp = confusion(y, labels).ravel()
        mark(fig, tp / (tp + fn), tp / (tp + fp) if tp + fp else 1.0, f"at {at}")
        what = f"Precision-recall curve of {_class(names, 1)}"
    else:
        what = "Precision-recall curves, each class vs the rest"
    if "average_precision" in metrics:
        macro = "macro " if scores.ndim == 2 else ""
        what += f": {macro}average precision {metrics['average_precision']:.3f}"
    return layout(
        fig,
        what,
        where,
        "recall",
        "precision",
        xaxis={"range": [-0.01, 1.01]},
        yaxis={"range": [-0.01, 1.01]},
    )


def _calibration_figure(
    y: np.ndarray, scores: np.ndarray, names: list[str], where: str
) -> go.Figure:
    """One curve per class; with more than 3 classes, a pooled one shown, the rest a click away.

    A point's size grows with its bin's rows: a big miss on a few rows is noise.
    """
    many = scores.ndim == 2 and scores.shape[1] > 3
    curves: list[tuple[str, np.ndarray, np.ndarray, str | None]] = [
        (n, is_c, p, None) for n, is_c, p in _one_vs_rest(y, scores, names)
    ]
    if scores.ndim == 2:  # every (row, class) pair: is the row of the class, at what probability
        pairs = np.eye(scores.shape[1])[y].ravel() == 1
        curves.insert(0, ("all classes pooled", pairs, scores.ravel(), "#222"))
    fig = go.Figure()
    for name, is_c, p, color in curves:
        observed, predicted = calibration_curve(is_c, p, n_bins=CALIBRATION_BINS)
        rows = np.bincount(_bin_ids(p), minlength=CALIBRATION_BINS)
        rows = rows[rows > 0]  # calibration_curve leaves out the empty bins
        fig.add_scatter(
            x=predicted,
            y=observed,
            mode="lines+markers",
            name=name,
            visible="legendonly" if many and color is None else True,
            line={"color": color, "width": 2 if color is None else 3},
            marker={"size": 5 + 13 * np.sqrt(rows / rows.max()), "color": color},
            customdata=rows,
            hovertemplate="predicted %{x:.3f}, observed %{y:.3f}: %{customdata} rows",
        )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=DIAGONAL, name="perfectly calibrated")
    what = f"Calibration in {CALIBRATION_BINS} equal-width bins of predicted probability"
    if many:
        where += "; click a class in the legend to show its curve"
    return layout(
        fig,
        what,
        where + "; a point's size: its bin's rows",
        "mean predicted probability of the class (per bin)",
        "observed share of the class (per bin)",
        xaxis={"range": [-0.02, 1.02]},
        yaxis={"range": [-0.02, 1.02]},
    )


def _bin_ids(p: np.ndarray) -> np.ndarray:
    """The bin of each probability, as sklearn's calibration_curve bins them (uniform)."""
    return np.searchsorted(np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)[1:-1], p)
