"""generic_scorer (hpo/estimates/scoring.py): the metric called on each bootstrap sample's rows
as drawn, compared with scikit-learn called by hand; undefined samples are NaN."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from hpo.estimates.scoring import generic_scorer
from hpo.metrics import get_metric

Y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
OOF = np.array(  # three configurations' out-of-fold scores of the 8 rows
    [
        [0.1, 0.9, 0.4, 0.2, 0.8, 0.6, 0.7, 0.3],
        [0.6, 0.2, 0.9, 0.1, 0.3, 0.4, 0.8, 0.9],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    ]
)
ROWS = np.arange(8)


def test_each_sample_is_the_metric_on_its_rows_repeated_as_drawn() -> None:
    weights = np.array(
        [
            [2, 0, 1, 0, 3, 0, 1, 1],  # drawn with replacement
            [0, 1, 0, 1, 0, 1, 0, 1],  # out-of-bag rows, weight 1
            [1, 1, 1, 1, 1, 1, 1, 1],  # every row once
        ],
        dtype=float,
    )
    configs = np.array([[0, 1, 2], [0, 1, 2], [2, 0, 1]])
    got = generic_scorer(get_metric("f1"), Y, OOF, [])(ROWS, weights, configs)
    for b, counts in enumerate(weights.astype(int)):
        take = np.repeat(ROWS, counts)
        for j, config in enumerate(configs[b]):
            expected = skm.f1_score(Y[take], OOF[config, take] >= 0.5, zero_division=0)
            assert got[b, j] == pytest.approx(expected), (b, j)


def test_a_segment_of_rows_is_scored_on_those_rows_only() -> None:
    """A fold's rows: the weights are per row of the segment, not of the data."""
    y = np.array([3.0, -1.0, 2.0, 0.5, 4.0, 1.0])
    oof = np.vstack([y + 0.5, y[::-1]])
    rows = np.array([1, 3, 4])
    weights = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    got = generic_scorer(skm.mean_squared_error, y, oof, [])(rows, weights, np.array([[0, 1]] * 2))
    first, second = [1, 3, 3], [4, 4, 4]
    assert got[0].tolist() == pytest.approx(
        [skm.mean_squared_error(y[first], oof[c, first]) for c in (0, 1)]
    )
    assert got[1].tolist() == pytest.approx(
        [skm.mean_squared_error(y[second], oof[c, second]) for c in (0, 1)]
    )


def test_an_empty_sample_is_undefined() -> None:
    calls: list[int] = []

    def metric(y: np.ndarray, s: np.ndarray) -> float:
        calls.append(len(y))
        return 1.0

    got = generic_scorer(metric, Y, OOF, [])(ROWS, np.zeros((2, 8)), np.zeros((2, 3), dtype=int))
    assert np.isnan(got).all() and calls == []


@pytest.mark.parametrize("name", ["roc_auc", "average_precision", "log_loss"])
def test_a_ranking_metric_is_not_called_on_a_sample_of_one_class(name: str) -> None:
    """Undefined there: NaN, without an error to report."""
    one_class = (Y == 1).astype(float)  # only the rows of class 1
    errors: list[str] = []
    got = generic_scorer(get_metric(name), Y, OOF, errors)(
        ROWS, np.vstack([one_class, np.ones(8)]), np.array([[0, 1], [0, 1]])
    )
    assert np.isnan(got[0]).all() and errors == []
    expected = {
        "roc_auc": skm.roc_auc_score,
        "average_precision": skm.average_precision_score,
        "log_loss": skm.log_loss,
    }[name]
    assert got[1].tolist() == pytest.approx([expected(Y, OOF[c]) for c in (0, 1)])


def test_a_label_metric_is_scored_on_a_sample_of_one_class() -> None:
    one_class = (Y == 1).astype(float)
    got = generic_scorer(get_metric("accuracy"), Y, OOF, [])(
        ROWS, one_class[None, :], np.array([[0]])
    )
    take = ROWS[Y == 1]
    assert got[0, 0] == pytest.approx(skm.accuracy_score(Y[take], OOF[0, take] >= 0.5))


def test_a_metric_that_raises_leaves_its_sample_undefined_and_keeps_the_first_error() -> None:
    def picky(y: np.ndarray, s: np.ndarray) -> float:
        if len(y) < 8:
            raise ValueError(f"{len(y)} rows is too few")
        return float(np.mean(s))

    errors: list[str] = []
    weights = np.array([np.ones(8), np.eye(8)[0] * 3, np.eye(8)[1] * 2])
    got = generic_scorer(picky, Y, OOF, errors)(ROWS, weights, np.zeros((3, 1), dtype=int))
    assert got[0, 0] == pytest.approx(OOF[0].mean())
    assert np.isnan(got[1:]).all()
    assert errors == ["ValueError: 3 rows is too few"], "one error is enough to say why"


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_a_non_finite_value_is_undefined(value: float) -> None:
    got = generic_scorer(lambda y, s: value, Y, OOF, [])(ROWS, np.ones((1, 8)), np.array([[0]]))
    assert np.isnan(got).all()


def test_the_metric_warnings_are_silenced() -> None:
    """A degenerate sample (nothing predicted positive) warns in scikit-learn, every time."""
    none_positive = np.array([1, 0, 1, 1, 0, 0, 0, 1], dtype=float)  # the rows scored < 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = generic_scorer(lambda y, s: skm.precision_score(y, s >= 0.5), Y, OOF, [])(
            ROWS, none_positive[None, :], np.array([[0]])
        )
    assert got[0, 0] == 0.0
