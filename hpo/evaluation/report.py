"""The ``Report`` (metrics and figures) and what every figure of it shares.

``scored`` reads the numbers from the metric registry (``hpo.metrics``), so they
match the ones logged per trial; ``layout`` titles a figure with what it shows
and what it was computed on; ``table`` is the metrics table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from hpo.metrics import Metric, metrics_for

ARTIFACT_DIR = "plots/evaluation"
DIAGONAL = {"dash": "dash", "color": "grey", "width": 1}

# What each registered metric measures, for the metrics table.
MEANING = {
    "accuracy": "share of rows predicted right",
    "precision": "TP / (TP + FP): share of predicted positives that are positive",
    "recall": "TP / (TP + FN): share of positives found (sensitivity)",
    "f1": "harmonic mean of precision and recall",
    "specificity": "TN / (TN + FP): share of negatives found",
    "balanced_accuracy": "mean recall over the classes",
    "cohen_kappa": "agreement beyond chance (0 chance, 1 perfect)",
    "mcc": "Matthews correlation of true and predicted (0 chance, 1 perfect)",
    "roc_auc": "area under the ROC curve: ranking, at every threshold",
    "average_precision": "area under the precision-recall curve, at every threshold",
    "log_loss": "cross-entropy of the probabilities (calibration and ranking)",
    "mse": "mean squared error",
    "rmse": "root mean squared error, in the target's units",
    "mae": "mean absolute error, in the target's units",
    "r2": "share of the target's variance explained (1 perfect, 0 the mean)",
    "mape": "mean |error| / |actual| (a fraction; large near zero actuals)",
    "smape": "mean 2 |error| / (|actual| + |predicted|), in [0, 2]",
    "huber": "mean Huber loss, delta 1: squared below, linear above",
}


@dataclass
class Report:
    """Metrics by registry name and plotly figures by name (the file name without .html)."""

    metrics: dict[str, float]
    figures: dict[str, go.Figure] = field(default_factory=dict)

    def html(self) -> dict[str, str]:
        """File name -> standalone HTML page (plotly.js inlined), one per figure."""
        return {
            f"{name}.html": figure.to_html(full_html=True, include_plotlyjs=True)
            for name, figure in self.figures.items()
        }

    def section(self, heading: str) -> Section:
        return heading, list(self.figures.values())


Section = tuple[str, list[go.Figure]]  # a heading and the figures under it


def page(title: str, sections: Sequence[Section]) -> str:
    """Every figure on one standalone page, under its section's heading.

    plotly.js (4.6 MB) is inlined once for the page, not per figure: a study's
    figures cost one copy (as standalone plots they were 19 MB), and the page opens
    offline in MLflow's artifact viewer. Figures fill the viewer's width.
    """
    parts, first = [], True
    for heading, figures in sections:
        if not figures:
            continue
        parts.append(f"<h3>{html.escape(heading)}</h3>" if heading else "")
        for figure in figures:
            figure.update_layout(width=None, autosize=True)
            parts.append(
                '<div style="margin-bottom: 2em">'
                + figure.to_html(
                    full_html=False,
                    include_plotlyjs=first,
                    default_width="100%",
                    config={"responsive": True},
                )
                + "</div>"
            )
            first = False
    body = "\n".join(parts)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body style='font-family: sans-serif'><h2>{html.escape(title)}</h2>\n{body}"
        "</body></html>"
    )


def scored(
    metrics: list[Metric], y: np.ndarray, scores: np.ndarray, labels: np.ndarray | None
) -> dict[str, float]:
    """Each registered metric; binary label metrics read the labels at the threshold.

    A 0/1 label is its own score at the registry's 0.5 cut. Undefined ones are left out.
    """
    out: dict[str, float] = {}
    for metric in metrics:
        given = labels if labels is not None and metric.needs == "labels" else scores
        try:
            value = metric(y, given)
        except ValueError:  # e.g. ROC-AUC where a class has no rows
            continue
        if np.isfinite(value):
            out[metric.name] = value
    return out


def mark(fig: go.Figure, x: float, y: float, name: str) -> None:
    """The operating point on a curve (the chosen threshold): one black cross."""
    fig.add_scatter(
        x=[x],
        y=[y],
        mode="markers",
        name=name,
        marker={"size": 12, "symbol": "x", "color": "black"},
    )


def layout(fig: go.Figure, what: str, where: str, x: str, y: str, **more: Any) -> go.Figure:
    fig.update_layout(
        title={"text": f"{what}<br><sup>{where}</sup>"},
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        **more,
    )
    return fig


def table(metrics: dict[str, float], labels: dict[str, str], what: str, where: str) -> go.Figure:
    registry = {m.name: m for m in metrics_for("classification") + metrics_for("regression")}
    rows = list(metrics)
    fig = go.Figure(
        go.Table(
            columnwidth=[2.2, 1, 0.8, 4],
            header={
                "values": ["metric", "value", "better", "what it measures"],
                "align": "left",
                "height": 28,
            },
            cells={
                "values": [
                    [labels.get(m, m) for m in rows],
                    [_fmt(metrics[m]) for m in rows],
                    ["higher" if registry[m].direction == "maximize" else "lower" for m in rows],
                    [MEANING.get(m, "") for m in rows],
                ],
                "align": ["left", "right", "left", "left"],
                "height": 26,
            },
        )
    )
    fig.update_layout(
        title={"text": f"{what}<br><sup>{where}</sup>"},
        height=90 + 28 + 26 * len(rows) + 40,
        margin={"t": 90, "b": 20},
        template="plotly_white",
    )
    return fig


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.4f}"
