"""The study's folds: each scheme's splitter, and the folds it draws."""

import numpy as np
import pytest
from sklearn import model_selection as ms

from hpo.config import CVConfig
from hpo.errors import UserError
from hpo.folds import SCHEMES, make_folds, make_splitter
from tests.hpo.cv_data import classification_data, regression_data

# --- splitters ---------------------------------------------------------------


def test_kfold_splitter():
    splitter = make_splitter(CVConfig(scheme="kfold", n_splits=4, seed=3), "regression")
    assert isinstance(splitter, ms.KFold)
    assert splitter.get_n_splits() == 4
    assert splitter.shuffle
    assert splitter.random_state == 3


def test_kfold_without_shuffle_is_contiguous():
    data = regression_data(n=12)
    folds = make_folds(CVConfig(scheme="kfold", n_splits=3, shuffle=False, seed=3), data)
    assert [valid.tolist() for _, valid in folds] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_shuffled_folds_are_reproducible_from_the_seed():
    data = regression_data(n=30)

    def folds(seed):
        cv = CVConfig(scheme="kfold", n_splits=3, seed=seed)
        return [valid.tolist() for _, valid in make_folds(cv, data)]

    assert folds(1) == folds(1)
    assert folds(1) != folds(2)


def test_stratified_kfold_splitter():
    splitter = make_splitter(
        CVConfig(scheme="stratified_kfold", n_splits=3, seed=0), "classification"
    )
    assert isinstance(splitter, ms.StratifiedKFold)
    assert splitter.get_n_splits() == 3


def test_stratified_kfold_on_regression_is_a_user_error():
    with pytest.raises(UserError, match=r"stratified_kfold needs class labels.*cv=kfold"):
        make_splitter(CVConfig(scheme="stratified_kfold"), "regression")


def test_timeseries_splitter():
    splitter = make_splitter(CVConfig(scheme="timeseries", n_splits=4, gap=2), "regression")
    assert isinstance(splitter, ms.TimeSeriesSplit)
    assert splitter.get_n_splits() == 4
    assert splitter.gap == 2


def test_loo_splitter_gives_one_row_per_fold():
    data = regression_data(n=7)
    folds = make_folds(CVConfig(scheme="loo", shuffle=False), data)
    assert len(folds) == 7
    assert sorted(int(valid[0]) for _, valid in folds) == list(range(7))
    assert all(len(valid) == 1 and len(train) == 6 for train, valid in folds)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_holdout_uses_test_size(task):
    data = classification_data((50, 50)) if task == "classification" else regression_data(n=100)
    folds = make_folds(CVConfig(scheme="holdout", test_size=0.3, seed=0), data)
    assert len(folds) == 1
    train, valid = folds[0]
    assert len(valid) == 30
    assert len(train) == 70
    assert not set(train) & set(valid)


def test_holdout_on_classification_is_stratified():
    data = classification_data((80, 20))
    [(_, valid)] = make_folds(CVConfig(scheme="holdout", test_size=0.25, seed=0), data)
    assert np.bincount(data.y[valid]).tolist() == [20, 5]


def test_unknown_scheme_is_a_user_error():
    with pytest.raises(UserError, match="unknown CV scheme 'bootstrap'"):
        make_splitter(CVConfig(scheme="bootstrap"), "regression")


def test_every_scheme_in_schemes_is_accepted():
    for scheme in SCHEMES:
        make_splitter(CVConfig(scheme=scheme, n_splits=2), "classification")


# --- folds -------------------------------------------------------------------


@pytest.mark.parametrize("gap", [0, 3])
def test_timeseries_folds_never_train_on_the_future(gap):
    data = regression_data(n=50)
    folds = make_folds(CVConfig(scheme="timeseries", n_splits=4, gap=gap), data)
    assert len(folds) == 4
    for train, valid in folds:
        assert train.max() + gap < valid.min()


def test_stratified_folds_keep_class_ratios():
    data = classification_data((30, 15, 15))
    folds = make_folds(CVConfig(scheme="stratified_kfold", n_splits=5, seed=0), data)
    for _, valid in folds:
        assert np.bincount(data.y[valid], minlength=3).tolist() == [6, 3, 3]


def test_folds_partition_the_rows():
    data = classification_data()
    folds = make_folds(CVConfig(scheme="stratified_kfold", n_splits=5, seed=0), data)
    valid_rows = np.concatenate([valid for _, valid in folds])
    assert sorted(valid_rows.tolist()) == list(range(len(data.y)))
    for train, valid in folds:
        assert not set(train) & set(valid)


def test_too_many_splits_is_a_user_error():
    data = classification_data((4, 4))
    with pytest.raises(UserError, match=r"cannot split 'clf' with stratified_kfold.*n_splits"):
        make_folds(CVConfig(scheme="stratified_kfold", n_splits=5, seed=0), data)
