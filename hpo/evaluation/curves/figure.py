"""A curve drawn: training and validation means with bands of one spread, the winner marked."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from hpo.evaluation.curves.curve import Curve
from hpo.evaluation.curves.verdict import fmt, value_said, where_said
from hpo.evaluation.report import layout, mark

TRAIN_COLOR, VALID_COLOR = "#636efa", "#ef553b"
LOG_AXIS_RATIO = 10  # a knob spanning more than this factor is drawn on a log axis
BANDS = {TRAIN_COLOR: "rgba(99, 110, 250, 0.15)", VALID_COLOR: "rgba(239, 85, 59, 0.15)"}


def curve_figure(curve: Curve, metric_name: str, where: str) -> go.Figure:
    """Training and validation means over folds, ± 1 std bands, the winner marked."""
    x = np.asarray(curve.values if curve.kind == "validation" else curve.rows, dtype=float)
    fig = go.Figure()
    n_folds = curve.valid.shape[1]
    for name, which, color in (
        ("training", "train", TRAIN_COLOR),
        ("validation", "valid", VALID_COLOR),
    ):
        mean, std = curve.mean(which), curve.std(which)  # type: ignore[arg-type]
        fig.add_scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([mean + std, (mean - std)[::-1]]),
            mode="lines",
            fill="toself",
            fillcolor=BANDS[color],
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            name=f"{name} ± 1 std",
        )
        fig.add_scatter(
            x=x,
            y=mean,
            mode="lines+markers",
            name=f"{name} (mean of {n_folds} folds)",
            line={"color": color},
            customdata=std,
            hovertemplate=f"{name} %{{y:.4g}} ± %{{customdata:.3g}}<extra></extra>",
        )
    i = curve.index
    t, v = curve.mean("train")[i], curve.mean("valid")[i]
    said = f"training {fmt(t)} vs validation {fmt(v)} at {where_said(curve)}"
    if curve.kind == "validation":
        mark(fig, x[i], v, f"the winner: {curve.knob}={value_said(curve.at)}")
        what, x_title = f"Validation curve along {curve.knob}: {said}", curve.knob
    else:
        mark(fig, x[i], v, "the winner, on all training rows")
        what, x_title = f"Learning curve: {said}", "training rows (mean over folds)"
    log = curve.kind == "validation" and x.min() > 0 and x.max() / x.min() > LOG_AXIS_RATIO
    return layout(
        fig,
        what,
        f"{where}; bands: ± 1 std over {n_folds} folds",
        x_title,
        f"{metric_name} (mean over folds)",
        xaxis={"type": "log"} if log else {},
    )
