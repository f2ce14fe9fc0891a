"""choose_threshold (hpo/evaluation/threshold.py): the threshold of least cost, by brute force."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from hpo.errors import UserError
from hpo.evaluation import choose_threshold


def brute_force_costs(y, p, cost_fp, cost_fn):
    """The expected cost per row at each distinct score, counted row by row."""
    out = {}
    for t in np.unique(p):
        called = p >= t
        fp, fn = np.sum(called & (y == 0)), np.sum(~called & (y == 1))
        out[float(t)] = (fp * cost_fp + fn * cost_fn) / len(y)
    return out


def test_a_costly_miss_moves_the_threshold_to_a_known_value_below_a_half() -> None:
    """Missing a positive costs 10: calling the positive at 0.2 pays for one false alarm."""
    y = np.array([0, 1, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
    choice = choose_threshold(y, p, cost_fp=1.0, cost_fn=10.0)
    assert choice.value == 0.2
    assert choice.cost == pytest.approx(1 / 6)  # one false positive (0.4)
    assert choice.cost_at_half == pytest.approx(20 / 6)  # two misses (0.2, 0.3)


@pytest.mark.parametrize(("cost_fp", "cost_fn"), [(1.0, 10.0), (10.0, 1.0), (1.0, 1.0), (0.0, 1.0)])
def test_the_chosen_threshold_is_the_minimum_of_a_brute_force_sweep(
    binary, cost_fp: float, cost_fn: float
) -> None:
    y, p = binary
    choice = choose_threshold(y, p, cost_fp, cost_fn)
    swept = brute_force_costs(y, p, cost_fp, cost_fn)
    assert choice.thresholds.tolist() == sorted(swept)  # every distinct score, ascending
    assert choice.costs == pytest.approx([swept[t] for t in sorted(swept)])
    assert choice.cost == pytest.approx(min(swept.values()))
    assert swept[choice.value] == pytest.approx(choice.cost)
    assert choice.cost <= choice.cost_at_half
    called = p >= 0.5
    at_half = np.sum(called & (y == 0)) * cost_fp + np.sum(~called & (y == 1)) * cost_fn
    assert choice.cost_at_half == pytest.approx(at_half / len(y))


def test_the_cost_ratio_moves_the_threshold_each_way(binary) -> None:
    y, p = binary
    misses_cost = choose_threshold(y, p, cost_fp=1.0, cost_fn=10.0).value
    alarms_cost = choose_threshold(y, p, cost_fp=10.0, cost_fn=1.0).value
    assert misses_cost < 0.5 < alarms_cost


def test_equal_costs_make_the_cost_the_error_rate(binary) -> None:
    y, p = binary
    choice = choose_threshold(y, p, cost_fp=1.0, cost_fn=1.0)
    assert choice.cost_at_half == pytest.approx(1 - skm.accuracy_score(y, p >= 0.5))
    assert choice.cost == pytest.approx(1 - skm.accuracy_score(y, p >= choice.value))


def test_ties_go_to_the_threshold_nearest_a_half() -> None:
    """Calling at 0.2, 0.52 or 0.9 makes two errors, any other threshold more: 0.52 is kept."""
    y = np.array([0, 1, 0, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.3, 0.52, 0.6, 0.9])
    choice = choose_threshold(y, p, cost_fp=1.0, cost_fn=1.0)
    assert choice.costs.tolist() == pytest.approx(np.array([3, 2, 3, 2, 3, 2]) / 6)
    assert choice.value == 0.52


@pytest.mark.parametrize(("cost_fp", "cost_fn"), [(-1.0, 5.0), (0.0, 0.0), (float("nan"), 1.0)])
def test_costs_that_cannot_rank_thresholds_are_refused(cost_fp: float, cost_fn: float) -> None:
    with pytest.raises(UserError, match=r"evaluation\.cost"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), cost_fp, cost_fn)


def test_one_class_has_no_threshold_to_choose() -> None:
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.8]), 1.0, 5.0)
