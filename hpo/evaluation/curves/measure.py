"""The winner's two curves, measured by refitting it through its objective on the folds."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from hpo.cv import CVSetup
from hpo.evaluation.curves.curve import Curve
from hpo.evaluation.curves.knobs import sign
from hpo.metrics import Metric
from objectives.base import FoldData, Objective

LEARNING_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


def validation_curve(
    objective: Objective,
    params: dict[str, Any],
    setup: CVSetup,
    knob: str,
    values: Sequence[float],
) -> Curve:
    """The winner's ``params`` with ``knob`` set to each of ``values`` (and to its own
    value, always, so the verdict reads the winner), scored on every fold."""
    if knob not in params:
        raise ValueError(f"the winner has no parameter '{knob}' to draw a validation curve along")
    at = params[knob]
    grid = tuple(sorted({*values, at}))
    runs = [
        ({**params, knob: v}, i, train) for v in grid for i, (train, _) in enumerate(setup.folds)
    ]
    train, valid = _score(objective, setup, runs, len(grid))
    rows = tuple(float(np.mean([len(t) for t, _ in setup.folds])) for _ in grid)
    return Curve("validation", knob, grid, train, valid, at, setup.metric.name, rows, sign(knob))


def learning_curve(
    objective: Objective,
    params: dict[str, Any],
    setup: CVSetup,
    fractions: Sequence[float] = LEARNING_FRACTIONS,
) -> Curve:
    """The winner fit on the first ``fraction`` of each fold's training rows, validation
    rows unchanged.

    Each fold's training rows are put in one seeded order (``setup.seed`` + fold, as the
    folds' fits are seeded), stratified by class for classification so that every prefix
    keeps the class shares; a smaller share is a prefix of a larger one, so the curve's
    last step adds rows to the same rows rather than comparing two unrelated draws.
    All the rows are fit in the fold's own order, as the trial fit them (an objective's
    inner split depends on the order), so the curve ends at the winner's CV score.
    """
    shares = tuple(sorted({float(f) for f in fractions}))
    if not shares or shares[0] <= 0 or shares[-1] > 1:
        raise ValueError(f"learning-curve fractions must lie in (0, 1], not {list(fractions)}")
    least = max(2, setup.data.n_classes)
    orders = [_order(setup, train, i) for i, (train, _) in enumerate(setup.folds)]
    cuts = [[min(len(o), max(least, round(f * len(o)))) for o in orders] for f in shares]
    runs = [(params, i, _first(setup, i, o, cut[i])) for cut in cuts for i, o in enumerate(orders)]
    train, valid = _score(objective, setup, runs, len(shares))
    rows = tuple(float(np.mean(cut)) for cut in cuts)
    return Curve(
        "learning", "training rows", shares, train, valid, shares[-1], setup.metric.name, rows
    )


def _first(setup: CVSetup, fold: int, order: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows of the fold's order; all of them in the fold's own order."""
    return np.asarray(setup.folds[fold][0]) if n == len(order) else order[:n]


def _order(setup: CVSetup, train: np.ndarray, fold: int) -> np.ndarray:
    """The fold's training rows in a seeded order whose every prefix is stratified.

    Row i (0-based, shuffled) of a class of n rows gets the key (i + u) / n, u uniform
    in [0, 1): sorted by key, each class is spread evenly over the order.
    """
    rng = np.random.default_rng(setup.seed + fold)
    train = np.asarray(train)
    if setup.data.task != "classification":
        return rng.permutation(train)
    labels = setup.data.y[train]
    keys = np.empty(len(train))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        keys[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return train[np.argsort(keys, kind="stable")]


Run = tuple[dict[str, Any], int, np.ndarray]  # params, fold index, the rows to fit on


def _score(
    objective: Objective, setup: CVSetup, runs: list[Run], n_values: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) scores, each (n_values, n_folds); ``setup.n_jobs`` fits at once."""
    if setup.leave_one_out:
        raise ValueError("curves need folds with several validation rows, not leave-one-out")
    n_jobs = max(1, min(setup.n_jobs, len(runs)))
    threads = max(1, (os.cpu_count() or 1) // n_jobs)

    def one(run: Run) -> tuple[float, float]:
        return _fit_fold(objective, setup, *run, threads=threads)

    if n_jobs == 1:
        scores = [one(run) for run in runs]
    else:
        with ThreadPoolExecutor(n_jobs) as pool:
            scores = list(pool.map(one, runs))
    both = np.asarray(scores, dtype=float).reshape(n_values, len(setup.folds), 2)
    return both[..., 0], both[..., 1]


def _fit_fold(
    objective: Objective,
    setup: CVSetup,
    params: dict[str, Any],
    fold: int,
    rows: np.ndarray,
    threads: int,
) -> tuple[float, float]:
    """One fit on ``rows``, scoring its own rows and the fold's validation rows.

    The objective sees validation rows without labels, as in a trial: its ``X_valid``
    is the training rows followed by the validation rows, so one model (one fit, one
    seed) gives both scores, and the training score is of the model that was validated.
    """
    data, valid = setup.data, setup.folds[fold][1]
    X_train, y_train = data.X[rows], data.y[rows]
    scored = np.concatenate([X_train, data.X[valid]])
    seed = setup.seed + fold
    out = objective.fit_predict(
        params, FoldData(X_train, y_train, scored, data.n_classes, seed, threads, setup.metric)
    )
    scores = np.asarray(out.scores)
    n = len(y_train)
    return _metric(setup.metric, y_train, scores[:n]), _metric(
        setup.metric, data.y[valid], scores[n:]
    )


def _metric(metric: Metric, y: np.ndarray, scores: np.ndarray) -> float:
    try:
        return metric(y, scores)
    except ValueError:  # undefined on these rows (ROC-AUC on one class): left out of the mean
        return math.nan
