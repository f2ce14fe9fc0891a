"""regression_report (hpo/evaluation/regression.py): its metrics and residuals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from hpo.evaluation import regression_report
from hpo.metrics import score_all


def test_the_regression_metrics_are_the_ones_logged_per_trial(regression) -> None:
    y, pred = regression
    report = regression_report(y, pred)
    expected = score_all("regression", y, pred)
    assert set(expected) == {"mse", "rmse", "mae", "r2", "mape", "smape", "huber"}
    assert report.metrics == pytest.approx(expected)
    assert report.metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))


def test_the_residuals_are_actual_minus_predicted(regression) -> None:
    y, pred = regression
    figures = regression_report(y, pred).figures
    residuals = figures["residuals_vs_predicted"].data[0]
    assert np.allclose(residuals.x, pred)
    assert np.sum(residuals.y) == pytest.approx(np.sum(y) - np.sum(pred))
    assert np.allclose(residuals.y, y - pred)
    assert np.allclose(figures["residual_histogram"].data[0].x, y - pred)
    scatter, diagonal = figures["predicted_vs_actual"].data
    assert np.allclose(scatter.x, y) and np.allclose(scatter.y, pred)
    assert diagonal.x == diagonal.y  # the y = x line
    for name, figure in figures.items():
        assert "out-of-fold predictions, 200 rows" in figure.layout.title.text, name
