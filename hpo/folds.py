"""The study's folds: the scikit-learn splitter a CV config names, and the pairs it draws.

The (train, validation) index pairs are drawn once per study, before any
trial, and every trial is scored on the same ones (hpo/cv.py). A grouped
scheme keeps each group's rows on one side; a scheme or setting that cannot
split the data is one line naming what to change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import model_selection as ms

from hpo.config import CVConfig
from hpo.data import Dataset
from hpo.errors import UserError

Folds = list[tuple[np.ndarray, np.ndarray]]
SCHEMES = ("kfold", "stratified_kfold", "timeseries", "loo", "holdout")
GROUP_SCHEMES = ("group_kfold", "group_holdout")  # rows of a group never straddle train/valid


def make_splitter(cv: CVConfig, task: str) -> Any:
    """The scikit-learn splitter for a CV config (seeded where the splitter shuffles).

    A setting scikit-learn refuses (``cv.n_splits=1``) is one line naming the key."""
    try:
        return _splitter(cv, task)
    except ValueError as err:
        raise UserError(
            f"cv={cv.scheme} cannot be set up: {first_sentence(err)}: fix cv.n_splits "
            "(2 or more) or cv.test_size (between 0 and 1), or choose cv=holdout"
        ) from None


def first_sentence(err: BaseException) -> str:
    """The start of scikit-learn's message, without its own advice after the comma."""
    return str(err).splitlines()[0].split(" by setting ")[0].rstrip(".,")


def _splitter(cv: CVConfig, task: str) -> Any:
    seed = cv.seed if cv.shuffle else None
    if cv.scheme == "kfold":
        return ms.KFold(cv.n_splits, shuffle=cv.shuffle, random_state=seed)
    if cv.scheme == "stratified_kfold":
        if task != "classification":
            raise UserError("stratified_kfold needs class labels: use cv=kfold for regression")
        return ms.StratifiedKFold(cv.n_splits, shuffle=cv.shuffle, random_state=seed)
    if cv.scheme == "timeseries":
        return ms.TimeSeriesSplit(cv.n_splits, gap=cv.gap)
    if cv.scheme == "loo":
        return ms.LeaveOneOut()
    if cv.scheme == "holdout":
        splitter = ms.StratifiedShuffleSplit if task == "classification" else ms.ShuffleSplit
        return splitter(n_splits=1, test_size=cv.test_size, random_state=cv.seed)
    if cv.scheme in GROUP_SCHEMES:  # stratified by class when the task has classes
        n_splits = cv.n_splits if cv.scheme == "group_kfold" else round(1 / cv.test_size)
        if task == "classification":
            return ms.StratifiedGroupKFold(n_splits, shuffle=cv.shuffle, random_state=seed)
        return ms.GroupKFold(n_splits, shuffle=cv.shuffle, random_state=seed)
    raise UserError(f"unknown CV scheme '{cv.scheme}': use cv=" + "|".join(SCHEMES + GROUP_SCHEMES))


def make_folds(cv: CVConfig, data: Dataset) -> Folds:
    """All (train, validation) index pairs of the study, computed once."""
    splitter = make_splitter(cv, data.task)
    if cv.scheme in GROUP_SCHEMES and data.groups is None:
        raise UserError(
            f"cv scheme {cv.scheme} needs groups and '{data.name}' has none: "
            "set study.data.group=COLUMN or use cv=holdout|stratified_kfold"
        )
    try:
        groups = data.groups if cv.scheme in GROUP_SCHEMES else None
        folds = list(splitter.split(data.X, data.y, groups))
        return folds[:1] if cv.scheme == "group_holdout" else folds
    except ValueError as err:
        raise UserError(
            f"cannot split '{data.name}' with {cv.scheme}: {err}; "
            "lower cv.n_splits or choose another cv"
        ) from err
