"""How a bootstrap sample is scored, and the fallback that calls the metric.

A scorer takes the rows of one segment (a fold, or all rows), the weight of
each row in each sample (how often it was drawn, or 1 for an out-of-bag row)
and the configurations to score in each sample. ``generic_scorer`` calls the
metric on each sample's rows, repeated as drawn; ``hpo.estimates.fast_scores``
computes the registry's metrics for all samples at once instead.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from hpo.metrics import Metric

MetricFn = Callable[[np.ndarray, np.ndarray], float]
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(rows, weights (B, len(rows)), configs (B, m)) -> scores (B, m), NaN where undefined."""

CELLS = 4_000_000  # bootstrap weights held at once (B x n): 32 MB


_TWO_CLASSES = {"roc_auc", "average_precision", "log_loss"}  # undefined on a single class


def generic_scorer(metric: MetricFn, y: np.ndarray, oof: np.ndarray, errors: list[str]) -> Scorer:
    """Calls the metric on each sample's rows (repeated as drawn); a call that raises or
    returns a non-finite number leaves the sample undefined (its error kept in ``errors``).
    The metric's warnings (zero division on a degenerate sample) are silenced."""
    two_classes = isinstance(metric, Metric) and metric.name in _TWO_CLASSES

    def score(rows: np.ndarray, weights: np.ndarray, configs: np.ndarray) -> np.ndarray:
        out = np.full(configs.shape, np.nan)
        counts = weights.astype(np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(len(weights)):
                take = np.repeat(rows, counts[b])
                if take.size == 0 or (two_classes and len(np.unique(y[take])) < 2):
                    continue
                for j, config in enumerate(configs[b]):
                    try:
                        value = float(metric(y[take], oof[config, take]))
                    except Exception as err:  # a degenerate sample: the metric refuses it
                        if len(errors) < 1:
                            errors.append(f"{type(err).__name__}: {err}")
                        continue
                    out[b, j] = value if math.isfinite(value) else np.nan
        return out

    return score
