"""Bias and variance of the winner: a validation curve, a learning curve, and one line.

The validation curve refits the winner with one complexity knob (depth, rounds,
width, rank) set to each of a few values along its range; the learning curve
refits it on growing shares of each fold's training rows. Both score every fold
of the study's CV twice: on the rows the model was fit on (training) and on the
fold's validation rows, through the objective's own ``fit_predict``, so the
numbers are the study's. ``verdict`` reads them (rule in its docstring).

Example (two folds; rows: max_depth 2, 6, 10):
    >>> import numpy as np
    >>> from hpo.evaluation.curves import Curve, verdict
    >>> train = np.array([[0.80, 0.82], [0.99, 0.99], [1.0, 1.0]])
    >>> valid = np.array([[0.78, 0.80], [0.90, 0.92], [0.9, 0.9]])
    >>> curve = Curve("validation", "max_depth", (2, 6, 10), train, valid, at=6,
    ...               metric="f1", rows=(100, 100, 100))
    >>> for part in verdict(curve, "maximize").replace(": ", "; ").split("; "):
    ...     print(part)
    high variance
    training f1 0.990 vs validation 0.910 at the winner's max_depth=6
    no simpler max_depth validates better
    more data or regularization other than max_depth would help
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from hpo.cv import CVSetup
from hpo.evaluation.curves.curve import Curve
from hpo.evaluation.curves.figure import curve_figure
from hpo.evaluation.curves.knobs import complexity_knob, knob_values
from hpo.evaluation.curves.measure import learning_curve, validation_curve
from hpo.evaluation.curves.verdict import verdict
from hpo.metrics import Direction
from objectives.base import Objective

__all__ = [
    "BiasVariance",
    "Curve",
    "bias_and_variance",
    "complexity_knob",
    "curve_figure",
    "knob_values",
    "learning_curve",
    "validation_curve",
    "verdict",
]


@dataclass(frozen=True)
class BiasVariance:
    """Both curves of the winner (no validation curve without a complexity knob) and the line."""

    verdict: str
    learning: Curve
    validation: Curve | None = None

    def figures(self, metric_name: str, where: str) -> dict[str, go.Figure]:
        """File name (without .html) -> figure, as ``Report.figures`` holds them."""
        out = {"learning_curve": curve_figure(self.learning, metric_name, where)}
        if self.validation is not None:
            out["validation_curve"] = curve_figure(self.validation, metric_name, where)
        return out


def bias_and_variance(
    objective: Objective,
    params: dict[str, Any],
    setup: CVSetup,
    space: Mapping[str, Any],
    importances: Mapping[str, float] | None = None,
    direction: Direction | None = None,
) -> BiasVariance:
    """Everything above for the winner: its knob chosen, both curves, the verdict.

    ``space``: name -> entry of the study's space; ``direction``: the metric's own
    unless given (better means better for the metric, whatever the study stated).
    """
    knob = complexity_knob({n: e for n, e in space.items() if n in params}, importances)
    validation = None
    if knob is not None:
        values = knob_values(space[knob], params[knob])
        validation = validation_curve(objective, params, setup, knob, values)
    learning = learning_curve(objective, params, setup)
    line = verdict(validation or learning, direction or setup.metric.direction, learning)
    return BiasVariance(line, learning, validation)
