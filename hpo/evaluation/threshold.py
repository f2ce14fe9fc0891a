"""The decision threshold of a binary task, chosen by cost, and the figure of its cost curve.

Also the two helpers the binary figures share: ``binary`` checks labels and
P(class 1) scores, ``confusion`` counts a confusion matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from sklearn import metrics as skm

from hpo.errors import UserError
from hpo.evaluation.report import DIAGONAL, layout, mark


@dataclass(frozen=True)
class Threshold:
    """The decision threshold of least expected cost, with the cost curve it was read from.

    ``thresholds`` are the distinct scores, ascending; ``costs[i]`` is the expected
    cost per row when rows with P(class 1) >= ``thresholds[i]`` are called class 1.
    """

    value: float
    cost: float
    cost_at_half: float
    thresholds: np.ndarray
    costs: np.ndarray
    cost_fp: float = 1.0
    cost_fn: float = 1.0


def choose_threshold(
    y_true: np.ndarray, p_positive: np.ndarray, cost_fp: float, cost_fn: float
) -> Threshold:
    """The threshold among the distinct scores that minimizes (FP * cost_fp + FN * cost_fn) / n.

    Ties go to the threshold nearest 0.5. Choose it on out-of-fold predictions,
    never on test rows, or the test score is biased.
    """
    finite = bool(np.isfinite([cost_fp, cost_fn]).all())
    if not (finite and min(cost_fp, cost_fn) >= 0 and cost_fp + cost_fn > 0):
        raise UserError(
            f"evaluation.cost {{fp: {cost_fp}, fn: {cost_fn}}} cannot rank thresholds: "
            "give two costs >= 0, at least one of them > 0"
        )
    y, p = binary(y_true, p_positive)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"choosing a threshold needs both classes; all {len(y)} rows are one")
    fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=False)
    keep = np.isfinite(thresholds)  # the first one, +inf, calls no row positive
    fp, fn = np.rint(fpr[keep] * n_neg), np.rint((1 - tpr[keep]) * n_pos)
    costs = ((fp * cost_fp + fn * cost_fn) / len(y))[::-1]
    thresholds = thresholds[keep][::-1]
    tied = np.flatnonzero(costs <= costs.min() + 1e-12)
    best = tied[np.argmin(np.abs(thresholds[tied] - 0.5))]
    at_half = confusion(y, (p >= 0.5).astype(int))
    return Threshold(
        value=float(thresholds[best]),
        cost=float(costs[best]),
        cost_at_half=float((at_half[0, 1] * cost_fp + at_half[1, 0] * cost_fn) / len(y)),
        thresholds=thresholds,
        costs=costs,
        cost_fp=float(cost_fp),
        cost_fn=float(cost_fn),
    )


def binary(y_true: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true).astype(int), np.asarray(p, dtype=float)
    if p.ndim != 1 or len(p) != len(y):
        raise ValueError(f"binary scores are one P(class 1) per row: got shape {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"binary labels are 0 and 1: got {np.unique(y).tolist()}")
    return y, p


def confusion(y: np.ndarray, labels: np.ndarray, k: int = 2) -> np.ndarray:
    return skm.confusion_matrix(y, labels, labels=np.arange(k))


def cost_figure(t: Threshold, where: str) -> go.Figure:
    fig = go.Figure()
    # The cost at a threshold holds down to the next lower score: a step, vertical first.
    fig.add_scatter(x=t.thresholds, y=t.costs, mode="lines", line_shape="vh", name="expected cost")
    mark(fig, t.value, t.cost, f"chosen {t.value:.3g}: {t.cost:.4g}")
    fig.add_scatter(
        x=[0.5],
        y=[t.cost_at_half],
        mode="markers",
        name=f"0.5: {t.cost_at_half:.4g}",
        marker={"size": 10, "symbol": "circle-open", "color": "grey"},
    )
    fig.add_vline(x=t.value, line=DIAGONAL)
    # Up to the cheaper end (about: all rows called one class); past it a constant call wins.
    top = max(min(t.costs[0], t.costs[-1]), t.cost_at_half)
    what = (
        f"Expected cost per row by threshold (FP costs {t.cost_fp:g}, FN costs {t.cost_fn:g}):"
        f" {t.cost:.4g} at {t.value:.3g}, {t.cost_at_half:.4g} at 0.5"
    )
    return layout(
        fig,
        what,
        where,
        "threshold (class 1 when its probability ≥ threshold)",
        "expected cost per row",
        xaxis={"range": [-0.01, 1.01]},
        yaxis={"range": [0, 1.1 * top] if top > 0 else None},
    )
