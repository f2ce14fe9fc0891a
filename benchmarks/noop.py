"""An objective that does no work: random probabilities, for measuring platform overhead."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier

from objectives.base import FoldData, FoldOutput, Objective, Reporter


class NoopObjective(Objective):
    """Returns seeded random probabilities of the validation length; fits nothing.

    Extra keyword settings (``max_rounds`` etc. left over from the study's own
    objective node) are accepted and ignored, so only ``_target_`` needs overriding.
    ``sleep`` seconds per fold stand in for a model of known cost
    (benchmarks/distributed.py).
    """

    flavor = "sklearn"
    requirements = ("scikit-learn",)

    def __init__(
        self, task: str = "classification", seed: int = 0, sleep: float = 0.0, **_ignored: Any
    ) -> None:
        self.task = task
        self.sleep = sleep
        self._rng = np.random.default_rng(seed)

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        if self.sleep:
            time.sleep(self.sleep)
        return FoldOutput(self._rng.random(len(fold.X_valid)))

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        info: dict[str, float],
        seed: int,
    ) -> DummyClassifier:
        return DummyClassifier(strategy="prior").fit(X, y)

    def predict(self, model: DummyClassifier, X: np.ndarray) -> np.ndarray:
        return model.predict_proba(X)[:, 1]
