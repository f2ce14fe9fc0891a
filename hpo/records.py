"""What a trial's run holds, and where the Optuna study keeps the MLflow run ids.

Apart from hpo.tracking so that a worker with tracking off never imports MLflow
(about 0.8 s of every worker's start-up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo.names import PARENT_ATTR as PARENT_ATTR  # transition: import them from hpo.names
from hpo.names import RUN_ATTR as RUN_ATTR


@dataclass
class TrialRecord:
    """What the runner measured in one trial, ready to log."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL
    params: Mapping[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)  # step metrics
    tags: dict[str, str] = field(default_factory=dict)
    oof: tuple[str, Any, Any] | None = None  # (task, y_true, scores): scored by the writer
