"""The per-epoch metric equals hpo.metrics on every registered metric, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.metrics import REGISTRY, Metric
from objectives.epoch_metric import _FROM_CONFUSION, _FROM_ERRORS, _ConfusionScore, epoch_metric


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _cases(task: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, scores) pairs: typical, and the ones where definitions differ at the edges."""
    rng = np.random.default_rng(0)
    if task == "regression":
        y = rng.normal(50, 10, 120)
        return [
            (y, y + rng.normal(0, 5, 120)),
            (np.full(30, 3.0), np.full(30, 3.0)),  # constant labels, perfect: r2 is 1
            (np.full(30, 3.0), rng.normal(3, 1, 30)),  # constant labels: r2 is 0
        ]
    y4 = rng.integers(0, 4, 150)
    y_missing = np.where(y4 == 3, 0, y4)  # class 3 never in the labels, sometimes predicted
    never_predicted = _softmax(rng.normal(size=(150, 4)))
    never_predicted[:, 2] = 0.0  # class 2 in the labels, never predicted
    absent = never_predicted.copy()
    absent[:, 3] = 0.0  # class 3 neither in the labels nor predicted: not in the macro mean
    yb = rng.integers(0, 2, 100)
    return [
        (yb, rng.random(100)),  # binary: P(class 1)
        (yb, np.clip(yb * 0.6 + rng.random(100) * 0.5, 0, 1)),  # binary, better than chance
        (np.zeros(20, dtype=int), np.full(20, 0.1)),  # one class, all predicted right: no positives
        (np.zeros(20, dtype=int), np.full(20, 0.9)),  # one class, all predicted wrong
        (y4, _softmax(rng.normal(size=(150, 4)) + 2 * np.eye(4)[y4])),  # multi-class
        (y_missing, _softmax(rng.normal(size=(150, 4)))),
        (y4, never_predicted),
        (y_missing, absent),
    ]


@pytest.mark.parametrize("metric", list(REGISTRY.values()), ids=list(REGISTRY))
def test_equals_the_registered_metric(metric: Metric) -> None:
    checked = 0
    for y, scores in _cases(metric.task):
        try:
            expected = metric(y, scores)
        except ValueError:  # undefined here (ROC-AUC with a single class): not comparable
            continue
        assert epoch_metric(metric, y)(scores) == pytest.approx(
            expected, rel=1e-12, abs=1e-12, nan_ok=True
        )
        checked += 1
    assert checked >= 2


def test_the_common_metrics_take_the_fast_path_and_others_the_registered_function() -> None:
    y = np.array([0, 1, 1, 0])
    assert isinstance(epoch_metric(REGISTRY["f1"], y), _ConfusionScore)
    assert {"accuracy", "f1", "precision", "recall"} <= set(_FROM_CONFUSION)
    assert {"rmse", "mse", "mae", "r2"} <= set(_FROM_ERRORS)
    assert not isinstance(epoch_metric(REGISTRY["mcc"], y), _ConfusionScore)
    labels = np.array(["a", "b", "b", "a"])  # not class ids: the registered function decides
    assert not isinstance(epoch_metric(REGISTRY["f1"], labels), _ConfusionScore)


def test_a_plain_function_without_a_name_is_called_as_it_is() -> None:
    y = np.array([1.0, 2.0, 4.0])
    score = epoch_metric(lambda t, s: float(np.max(np.abs(t - s))), y)
    assert score(np.array([1.0, 2.5, 3.0])) == 1.0
