"""What a trial's run holds, as the runner hands it to the tracker.

Apart from tracker.py so that a worker with tracking off never imports MLflow
(about 0.8 s of every worker's start-up): this module imports nothing that
does. The Optuna attributes that keep the MLflow run ids are in hpo/names.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrialRecord:
    """What the runner measured in one trial, ready to log."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL
    params: Mapping[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)  # step metrics, logged whole
    # learning curves, one per fold (hpo.cv.fold_curve): thinned to tracking.curve_points
    curves: dict[str, list[float]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # (prefix, task, y_true, scores): scored by the writer with every metric of the task, each
    # logged as prefix + name (oof_f1; oof_partial_f1 for a pruned trial's folds so far)
    oof: tuple[str, str, Any, Any] | None = None


def thinned(length: int, points: int) -> list[int]:
    """The steps kept of a curve of ``length`` points: ``points`` evenly spaced ones, the
    first and the last among them (all of them for ``points`` 0 or a short curve). The
    step stays the epoch or round, so a thinned curve keeps its shape on the right axis."""
    if points <= 0 or length <= points:
        return list(range(length))
    if points == 1:
        return [length - 1]
    return sorted({round(i * (length - 1) / (points - 1)) for i in range(points)})
