"""The corrected resampled t-test (hpo/estimates/ttest.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hpo.estimates import corrected_t_test, indistinguishable

# --- the corrected resampled t-test ------------------------------------------------------


def test_corrected_t_test_by_hand() -> None:
    """d = a - b = [0.04, 0, 0.04, 0, 0.02]: mean 0.02, variance 4 * 0.02**2 / 4 = 0.0004.
    Corrected: (1/5 + 20/400) * 0.0004 = 0.25 * 0.0004 = 0.0001, so t = 0.02 / 0.01 = 2 with
    4 degrees of freedom. Student's t with 4 dof has F(t) = 1/2 + (3/8) u (1 - u**2 / 12)
    with u = t / sqrt(1 + t**2 / 4) = sqrt(2), so F(2) = 1/2 + (3/8) sqrt(2) (5/6) and
    p = 2 (1 - F(2)) = 1 - 5 sqrt(2) / 8 = 0.11612."""
    a = [0.84, 0.80, 0.86, 0.81, 0.83]
    b = [0.80, 0.80, 0.82, 0.81, 0.81]
    test = corrected_t_test(a, b, n_train=400, n_test=20)
    assert test.mean_diff == pytest.approx(0.02)
    assert test.t == pytest.approx(2.0)
    assert test.dof == 4
    assert test.p_value == pytest.approx(1 - 5 * math.sqrt(2) / 8)
    swapped = corrected_t_test(b, a, n_train=400, n_test=20)
    assert (swapped.t, swapped.p_value) == pytest.approx((-2.0, test.p_value))


def test_with_a_negligible_correction_it_is_scipys_paired_t_test() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 0.02, 10), rng.normal(0.79, 0.02, 10)
    ours = corrected_t_test(a, b, n_train=10**12, n_test=1)  # 1/k + 1e-12
    theirs = stats.ttest_rel(a, b)
    assert ours.t == pytest.approx(theirs.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    five_fold = corrected_t_test(a, b, n_train=400, n_test=100)  # 1/k + 1/4
    assert five_fold.p_value > theirs.pvalue, "the correction makes it more cautious"


def test_identical_configurations_cannot_be_told_apart() -> None:
    scores = [0.91, 0.88, 0.93, 0.90, 0.89]
    test = corrected_t_test(scores, list(scores), n_train=400, n_test=100)
    assert (test.mean_diff, test.t, test.p_value, test.dof) == (0.0, 0.0, 1.0, 4)


def test_degenerate_cases_of_the_t_test() -> None:
    same_gap = corrected_t_test([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], n_train=100, n_test=50)
    assert same_gap.t == math.inf and same_gap.p_value == 0.0, "every fold agrees"
    holdout = corrected_t_test([0.9], [0.8], n_train=100, n_test=25)
    assert math.isnan(holdout.t) and holdout.p_value == 1.0 and holdout.dof == 0
    assert holdout.mean_diff == pytest.approx(0.1)
    for a, b, n_train in [
        ([0.9, 0.8], [0.9], 100),
        ([], [], 100),
        ([0.9, math.nan], [0.9, 0.8], 100),
        ([0.9], [0.8], 0),
    ]:
        with pytest.raises(ValueError):
            corrected_t_test(a, b, n_train=n_train, n_test=25)


def test_indistinguishable_names_the_trials_the_best_cannot_be_told_apart_from() -> None:
    best = [0.90, 0.86, 0.92, 0.88, 0.89]
    others = {
        7: [0.89, 0.87, 0.90, 0.88, 0.87],  # a bit lower, not on every fold: p = 0.41
        3: [0.80, 0.77, 0.81, 0.79, 0.78],  # 0.10 lower on every fold, give or take: p < 0.001
        31: list(best),  # the same scores: p = 1
        12: [0.88, 0.84, 0.90, 0.86, 0.87],  # exactly 0.02 lower on every fold: p = 0
    }
    assert indistinguishable(best, others, n_train=400, n_test=100) == [7, 31]
    p_7 = corrected_t_test(best, others[7], n_train=400, n_test=100).p_value
    assert 0.05 < p_7 < 0.5
    assert indistinguishable(best, others, n_train=400, n_test=100, alpha=0.5) == [31]
