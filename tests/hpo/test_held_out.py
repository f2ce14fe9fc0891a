"""Held-out test rows (hpo/held_out.py): split off as the CV splits, unseen by every trial."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hpo.config import CVConfig
from hpo.data import Dataset, load_data
from hpo.errors import UserError
from hpo.held_out import split_off
from hpo.runner import make_plan, run
from tests.hpo.runner.helpers import PRIOR, runs


def test_classes_keep_their_shares_and_no_row_is_on_both_sides() -> None:
    data = load_data("breast_cancer", "classification", 0)
    tuning, test = split_off(data, CVConfig(scheme="stratified_kfold"), 0.2, seed=0)
    assert len(tuning.y) + len(test.y) == len(data.y) and len(test.y) == 114
    assert abs(test.y.mean() - data.y.mean()) < 0.01, "stratified by class"
    rows = {tuple(x) for x in tuning.X}
    assert not any(tuple(x) in rows for x in test.X)


def test_a_time_series_holds_out_its_latest_rows() -> None:
    data = Dataset("t", np.arange(20.0).reshape(10, 2), np.arange(10.0), "regression", ["a", "b"])
    tuning, test = split_off(data, CVConfig(scheme="timeseries"), 0.3, seed=0)
    assert list(test.y) == [7.0, 8.0, 9.0] and list(tuning.y) == list(range(7))


def test_a_group_is_never_split_between_tuning_and_test() -> None:
    groups = np.repeat(np.arange(10), 3)
    data = Dataset("g", np.zeros((30, 1)), np.arange(30.0), "regression", ["a"], groups=groups)
    tuning, test = split_off(data, CVConfig(scheme="group_kfold"), 0.2, seed=0)
    assert tuning.groups is not None and test.groups is not None
    assert not set(tuning.groups) & set(test.groups) and len(set(test.groups)) == 2


@pytest.mark.parametrize("size", [1.0, -0.1, 1.5])
def test_a_test_size_that_is_no_fraction_is_a_user_error(size: float) -> None:
    data = load_data("breast_cancer", "classification", 0)
    with pytest.raises(UserError, match=r"evaluation\.test_size is .*between 0 and 1"):
        split_off(data, CVConfig(), size, seed=0)


def test_trials_never_see_the_test_rows_and_the_winner_is_scored_on_them(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "study.n_trials=2", "evaluation.test_size=0.2")
    plan = make_plan(cfg)
    assert plan.test is not None and len(plan.test.y) == 114 and len(plan.data.y) == 455
    seen = np.concatenate([np.concatenate([train, valid]) for train, valid in plan.folds])
    assert seen.max() < len(plan.data.y), "folds index the tuning rows only"

    summary = run(cfg)
    assert summary is not None and summary.test_value is not None
    assert summary.test_rows == 114
    assert "held-out rows no trial saw" in summary.text()
    parent, _ = runs(cfg)
    logged = MlflowClient(cfg.tracking.uri).get_run(parent.info.run_id).data.metrics
    assert logged["test_roc_auc"] == pytest.approx(summary.test_value)
