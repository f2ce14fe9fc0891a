"""The held-out test rows: reserved before tuning, scored once, by the refit winner.

The best cross-validated score of many trials is an optimistic estimate of
the winner: the search chose it because it did well on those very folds.
Rows no trial ever sees give an honest one. They are split off as the CV
would split them (stratified by class, whole groups, or the latest rows of
a time series), so the test rows look like the validation rows.
"""

from __future__ import annotations

import numpy as np
from sklearn import model_selection as ms

from hpo.config import CVConfig
from hpo.data import Dataset
from hpo.errors import UserError
from hpo.folds import GROUP_SCHEMES


def split_off(data: Dataset, cv: CVConfig, test_size: float, seed: int) -> tuple[Dataset, Dataset]:
    """(tuning rows, test rows) of ``data``, the test rows ``test_size`` of them."""
    if not 0.0 < test_size < 1.0:
        raise UserError(
            f"evaluation.test_size is {test_size}: use a fraction between 0 and 1 "
            "(e.g. 0.2), or 0 for no test rows"
        )
    tuning, test = _indices(data, cv, test_size, seed)
    if len(test) == 0 or len(tuning) == 0:
        raise UserError(
            f"evaluation.test_size={test_size} leaves no rows on one side of {len(data.y)}: "
            "pick a fraction that leaves rows for both"
        )
    return data.rows(tuning), data.rows(test)


def _indices(
    data: Dataset, cv: CVConfig, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(data.y))
    if cv.scheme == "timeseries":  # the future is the test: the latest rows
        cut = len(rows) - max(1, round(test_size * len(rows)))
        return rows[:cut], rows[cut:]
    if cv.scheme in GROUP_SCHEMES and data.groups is not None:
        splitter = ms.GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        tuning, test = next(splitter.split(rows, groups=data.groups))
        return np.sort(tuning), np.sort(test)
    stratify = data.y if data.task == "classification" else None
    try:
        tuning, test = ms.train_test_split(
            rows, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as err:  # a class too small to put on both sides
        raise UserError(f"evaluation.test_size={test_size}: {err}") from None
    return np.sort(tuning), np.sort(test)
