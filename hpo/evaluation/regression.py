"""The report of a regression task: predicted vs actual, the residuals, the metrics table.

A residual is actual - predicted: positive where the model predicts too low.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from hpo.evaluation.report import DIAGONAL, Report, layout, scored, table
from hpo.metrics import metrics_for

WEBGL_FROM = 5000  # rows: larger scatter plots are drawn with WebGL, which stays fast


def regression_report(
    y_true: np.ndarray, predictions: np.ndarray, source: str = "out-of-fold predictions"
) -> Report:
    """Predicted vs actual, residuals vs predicted, the residual histogram, the metrics table.

    A residual is actual - predicted: positive where the model predicts too low.
    """
    y, pred = np.asarray(y_true, dtype=float), np.asarray(predictions, dtype=float)
    residuals = y - pred
    where = f"{source}, {len(y)} rows"
    scatter = go.Scattergl if len(y) >= WEBGL_FROM else go.Scatter
    dots = {"mode": "markers", "marker": {"size": 5, "opacity": 0.6}}
    metrics = scored(metrics_for("regression"), y, pred, None)
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    pad = 0.03 * (high - low or 1.0)
    span = [low - pad, high + pad]

    actual = go.Figure(scatter(x=y, y=pred, name="rows", **dots))
    actual.add_scatter(x=[low, high], y=[low, high], mode="lines", line=DIAGONAL, name="y = x")
    said = ", ".join(
        f"{k} {metrics[n]:.3g}" for n, k in (("r2", "R²"), ("rmse", "RMSE")) if n in metrics
    )
    layout(
        actual,
        f"Predicted vs actual: {said}".rstrip(": "),
        where,
        "actual",
        "predicted",
        xaxis={"range": span, "constrain": "domain"},
        yaxis={"range": span, "scaleanchor": "x", "constrain": "domain"},
    )

    by_pred = go.Figure(scatter(x=pred, y=residuals, name="rows", **dots))
    by_pred.add_hline(y=0, line=DIAGONAL)
    layout(by_pred, "Residuals vs predicted", where, "predicted", "residual (actual - predicted)")

    hist = go.Figure(
        go.Histogram(x=residuals, name="rows", marker_line={"width": 1, "color": "white"})
    )
    hist.add_vline(x=0, line=DIAGONAL)
    spread = f"mean {residuals.mean():.4g}, std {residuals.std():.4g}"
    layout(hist, f"Residuals: {spread}", where, "residual (actual - predicted)", "rows")

    labels = {name: name for name in metrics}
    return Report(
        metrics,
        {
            "predicted_vs_actual": actual,
            "residuals_vs_predicted": by_pred,
            "residual_histogram": hist,
            "metrics": table(metrics, labels, "Metrics", where),
        },
    )
