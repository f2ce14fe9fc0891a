"""The exact vectorised scores of the registry's metrics (hpo/estimates/fast_scores.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.estimates.fast_scores import fast_scorer, score_once
from hpo.estimates.scoring import generic_scorer
from hpo.metrics import get_metric, score_all

# the registry's metrics that bbc_cv computes for all bootstraps at once
LABELS = ["accuracy", "balanced_accuracy", "mcc", "precision", "recall", "f1", "specificity"]
VECTORISED = [(name, "binary") for name in [*LABELS, "roc_auc", "average_precision", "log_loss"]]
VECTORISED += [(name, "multiclass") for name in [*LABELS, "log_loss"]]
VECTORISED += [(name, "regression") for name in ["mse", "rmse", "mae", "mape", "smape", "huber"]]


@pytest.mark.parametrize(("name", "task"), VECTORISED)
@pytest.mark.parametrize("n", [10, 80])
def test_vectorised_scores_equal_the_metric_on_the_drawn_rows(name: str, task: str, n: int) -> None:
    """Each sample's weights (counts of draws, out-of-bag indicators, none at all) give the
    value of the metric called on the rows as drawn; undefined (NaN) in the same samples.
    10 rows make samples with a single class or a single predicted label."""
    rng = np.random.default_rng(n)
    if task == "regression":
        y = rng.normal(size=n)
        y[0] = 0.0  # mape's epsilon, smape's 0/0
        oof = y + rng.normal(size=(4, n))
        oof[0, 0] = 0.0
    elif task == "binary":
        y = rng.integers(0, 2, n)
        oof = rng.random((4, n))
        oof[0, :3] = 0.5  # on the threshold
        oof[1] = oof[1].round(1)  # ties for the rankings
    else:
        y = rng.integers(0, 4, n)
        oof = rng.dirichlet(np.ones(4), (4, n))
    metric = get_metric(name)
    fast = fast_scorer(metric, y, oof)
    assert fast is not None
    called = generic_scorer(metric, y, oof, [])
    draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(8)])
    weights = np.vstack([draws, draws == 0, np.zeros((1, n))]).astype(float)
    rows, configs = np.arange(n), np.tile(np.arange(4), (len(weights), 1))
    expected = called(rows, weights, configs)
    np.testing.assert_allclose(fast(rows, weights, configs), expected, rtol=1e-10, atol=1e-12)
    assert np.isnan(expected[-1]).all(), "an empty sample has no score"


def test_metrics_without_an_exact_vectorised_form_are_called() -> None:
    rng = np.random.default_rng(0)
    y, oof = rng.normal(size=20), rng.normal(size=(3, 20))
    assert fast_scorer(get_metric("r2"), y, oof) is None
    assert fast_scorer(lambda a, b: 0.0, y, oof) is None
    labels, proba = rng.integers(0, 3, 20), rng.dirichlet(np.ones(3), (3, 20))
    assert fast_scorer(get_metric("roc_auc"), labels, proba) is None
    assert fast_scorer(get_metric("f1"), labels + 5, proba) is None, "not codes 0..k-1"


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "one class"])
def test_score_once_gives_score_all_values(task: str) -> None:
    """The writer's fast scoring of a trial's out-of-fold scores: the same metrics with the
    same values as calling each one, and the same ones left out when undefined."""
    rng = np.random.default_rng(3)
    if task == "regression":
        y, scores = rng.normal(size=60), rng.normal(size=60)
    elif task == "multiclass":
        y, scores = rng.integers(0, 3, 60), rng.dirichlet(np.ones(3), 60)
    else:
        y, scores = rng.integers(0, 2, 60), rng.random(60).round(1)
        if task == "one class":
            y[:] = 1  # ROC AUC and average precision are undefined
    kind = "regression" if task == "regression" else "classification"
    expected, got = score_all(kind, y, scores), score_once(kind, y, scores)
    assert set(got) == set(expected)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
