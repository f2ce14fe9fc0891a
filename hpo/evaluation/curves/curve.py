"""One curve: scores along one axis, per value and fold; the complexity knobs' signs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

# The complexity knobs of the shipped objectives (studies/*.yaml, objectives/*) and their
# usual names elsewhere, in order of preference when importances cannot choose: +1 where
# a larger value fits the rows more closely, -1 where it regularizes.
COMPLEXITY: dict[str, int] = {
    "max_depth": 1,
    "max_leaves": 1,
    "num_leaves": 1,
    "n_estimators": 1,
    "n_rounds": 1,
    "max_rounds": 1,
    "n_layers": 1,
    "width": 1,
    "hidden": 1,
    "hidden_size": 1,
    "r": 1,
    "epochs": 1,
    "max_epochs": 1,
    "C": 1,
    "min_child_weight": -1,
    "min_samples_leaf": -1,
    "gamma": -1,
    "reg_lambda": -1,
    "reg_alpha": -1,
    "alpha": -1,
    "weight_decay": -1,
    "dropout": -1,
    "lora_dropout": -1,
}
PER_LAYER_WIDTH = re.compile(r"width_\d+")  # the MLP's per-layer widths rank as width


@dataclass(frozen=True)
class Curve:
    """Scores along one axis, per value and fold.

    ``kind`` "validation": ``values`` are values of ``knob``, ``at`` the winner's;
    "learning": shares of each fold's training rows, ``at`` 1.0 (all of them).
    ``train`` and ``valid`` are (len(values), n_folds) arrays of ``metric``: on the
    rows each model was fit on, and on the fold's validation rows. ``rows``: training
    rows per value, the mean over folds. ``more_complex``: +1 when a larger value of
    the knob fits more closely, -1 when it regularizes (``COMPLEXITY``).
    """

    kind: Literal["validation", "learning"]
    knob: str
    values: tuple[float, ...]
    train: np.ndarray
    valid: np.ndarray
    at: float
    metric: str
    rows: tuple[float, ...]
    more_complex: int = 1

    @property
    def index(self) -> int:
        """Where the winner's value is in ``values``."""
        return self.values.index(self.at)

    def mean(self, which: Literal["train", "valid"]) -> np.ndarray:
        return _over_folds(np.nanmean, getattr(self, which))

    def std(self, which: Literal["train", "valid"]) -> np.ndarray:
        return _over_folds(np.nanstd, getattr(self, which))


def _over_folds(fn: Any, scores: np.ndarray) -> np.ndarray:
    out = np.full(len(scores), np.nan)
    defined = ~np.all(np.isnan(scores), axis=1)  # no warning for a value no fold could score
    out[defined] = fn(scores[defined], axis=1)
    return out
