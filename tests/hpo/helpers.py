"""Small objectives for tests: they fail, return NaN or fail on some parameters, on purpose."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from objectives.base import FoldData, FoldOutput, Objective, Reporter


@dataclass
class PriorObjective(Objective):
    """Predicts the training class prior (or mean): a cheap, deterministic objective."""

    task: str = "classification"
    flavor: str = "sklearn"
    fail_above: float | None = None  # fail when params["x"] is above this
    nan: bool = False
    sleep: float = 0.0  # seconds per fold, to keep a trial running

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        time.sleep(self.sleep)
        if self.fail_above is not None and params.get("x", 0) > self.fail_above:
            raise RuntimeError(f"x={params['x']} is too large")
        level = float(np.mean(fold.y_train)) + 0.3 * float(params.get("x", 0))
        scores = np.full(len(fold.X_valid), np.nan if self.nan else level)
        return FoldOutput(scores, {"calls": 1.0})

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        info: dict[str, float],
        seed: int,
    ) -> Any:
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="prior").fit(X, y)

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(X)[:, 1])
