"""Is the winner really better than the runners-up? The corrected resampled t-test.

Nadeau and Bengio (2003, "Inference for the generalization error", Machine
Learning 52), on the paired fold scores of two configurations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TTest:
    """The corrected resampled t-test of two configurations' paired fold scores."""

    mean_diff: float
    t: float
    p_value: float
    dof: int


def corrected_t_test(a: Sequence[float], b: Sequence[float], n_train: int, n_test: int) -> TTest:
    """Nadeau and Bengio's corrected resampled t-test, two-sided, on paired fold scores.

    The folds of a CV share most of their training rows, so fold scores are
    correlated and the plain paired t-test (variance / k) is far too
    confident. The correction scales the variance of the differences by
    ``1/k + n_test/n_train`` instead, with k - 1 degrees of freedom.

    Degenerate cases, and why:

    - k = 1 (a holdout): one difference says nothing about its spread, so
      nothing can be concluded: t is NaN, p = 1.0, dof = 0.
    - every difference 0 (identical scores; equal to 12 significant digits
      counts as equal): no evidence of a difference, t = 0, p = 1.0.
    - every difference the same nonzero value (to 12 significant digits): no
      spread, t = +-inf and p = 0.0. Every fold agrees on the sign and size;
      but with few folds and a coarse metric (accuracy on a small fold moves
      in steps of 1/n_test) this can happen by chance, so read it as "every
      fold agrees", not as certainty.

    Args:
        a: fold scores of the first configuration.
        b: fold scores of the second, on the same folds in the same order.
        n_train: training rows per fold.
        n_test: validation rows per fold.

    Returns:
        mean_diff is the mean of a - b (positive: a scores higher).

    Raises:
        ValueError: no scores, unequal lengths, non-finite scores or sizes below 1.

    Example:
        >>> test = corrected_t_test([0.84, 0.80, 0.86, 0.81, 0.83], [0.80, 0.80, 0.82, 0.81, 0.81],
        ...                         n_train=400, n_test=20)
        >>> round(test.t, 6), round(test.p_value, 4), test.dof
        (2.0, 0.1161, 4)
    """
    x, z = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != z.shape or len(x) == 0:
        raise ValueError(f"need two equally long lists of fold scores; got {len(a)} and {len(b)}")
    if not (np.isfinite(x).all() and np.isfinite(z).all()):
        raise ValueError("fold scores must be finite")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be at least 1; got {n_train}, {n_test}")
    d = np.where(np.isclose(x, z, rtol=1e-12, atol=0.0), 0.0, x - z)
    k, mean = len(d), float(d.mean())
    if k < 2:
        return TTest(mean, math.nan, 1.0, 0)
    variance = float(d.var(ddof=1))
    if math.sqrt(variance) <= 1e-12 * float(np.abs(d).max()):  # no spread but rounding
        if mean == 0:
            return TTest(0.0, 0.0, 1.0, k - 1)
        return TTest(mean, math.copysign(math.inf, mean), 0.0, k - 1)
    t = mean / math.sqrt((1 / k + n_test / n_train) * variance)
    return TTest(mean, t, float(2 * stats.t.sf(abs(t), k - 1)), k - 1)


def indistinguishable(
    best: Sequence[float],
    others: Mapping[int, Sequence[float]],
    n_train: int,
    n_test: int,
    alpha: float = 0.05,
) -> list[int]:
    """The trials (keys of ``others``, in their order) the best cannot be told apart from.

    A trial is indistinguishable when the corrected t-test of its fold scores
    against the best's gives p >= alpha, for the summary line "trial 12 cannot
    be told apart from trials 7, 31 (corrected t-test, p >= 0.05)". Failing to
    tell two trials apart is not evidence that they are equal: with 5 folds
    the test detects only large differences.
    """
    return [
        trial
        for trial, scores in others.items()
        if corrected_t_test(best, scores, n_train, n_test).p_value >= alpha
    ]
