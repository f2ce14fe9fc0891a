"""The objective every fault row tunes: cheap, deterministic, and slow or broken on request.

A fault must land inside a trial (a worker killed mid-fold, a server gone
while runs are open), so each fold may take ``sleep`` seconds, and stays
while the ``hold`` file exists (the row then knows the trial cannot end
before its fault: benchmarks/faults/scene.py ``Scene.held``); it stops early
when its trial is stopped, as a real objective does. ``fail_above``
and ``nan`` are the user's own faults: an objective that raises on part of
the space, or one whose score is not a number.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from objectives.base import FoldData, FoldOutput, Objective, Reporter


@dataclass
class FaultObjective(Objective):
    """Predicts the training class prior shifted by ``x``; one fit fact (``calls``)."""

    task: str = "classification"
    flavor: str = "sklearn"
    requirements = ("scikit-learn",)
    fit_fact_names = ("calls",)
    sleep: float = 0.0  # seconds per fold
    fail_above: float | None = None  # raise when params["x"] is above this
    nan: bool = False  # score every row NaN
    hold: str | None = None  # while this file exists, folds wait (touching HOLD.<pid>)

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        until = time.monotonic() + self.sleep
        while (time.monotonic() < until or self._held()) and not fold.stopped():
            time.sleep(0.05)
        x = float(params.get("x", 0.0))
        if self.fail_above is not None and x > self.fail_above:
            raise RuntimeError(f"x={x:.3f} is above {self.fail_above}")
        level = float(np.mean(fold.y_train)) + 0.3 * x
        return FoldOutput(np.full(len(fold.X_valid), np.nan if self.nan else level), {"calls": 1.0})

    def _held(self) -> bool:
        """True while the hold file exists; this process says it is held (HOLD.<pid>)."""
        if self.hold is None or not Path(self.hold).exists():
            return False
        Path(f"{self.hold}.{os.getpid()}").touch()
        return True

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        fit_facts: dict[str, float],
        seed: int,
    ) -> Any:
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="prior").fit(X, y)

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(X)[:, 1])
