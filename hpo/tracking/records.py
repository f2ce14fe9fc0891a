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
