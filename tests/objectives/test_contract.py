"""The objective contract: every objective runs one tiny trial through the same CV harness.

A new objective is added to OBJECTIVES and passes these tests before any
study uses it.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from hpo.config import CVConfig
from hpo.cv import FoldsPruned, cross_validate, make_folds
from hpo.data import load_data
from hpo.metrics import get_metric
from objectives.base import Objective
from objectives.mlp import MLPObjective
from objectives.xgboost import XGBoostObjective

OBJECTIVES = {
    "xgboost": lambda task: XGBoostObjective(task=task, max_rounds=10, early_stopping_rounds=3),
    "mlp": lambda task: MLPObjective(task=task, max_epochs=2, width=8, batch_size=64),
}
# (data, task, metric): binary, multi-class and regression
TASKS = [("breast_cancer", "classification", "f1"), ("iris", "classification", "f1")]
TASKS += [("diabetes", "regression", "rmse")]


def trial_check(trial: optuna.Trial):
    def should_prune(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return should_prune


@pytest.mark.parametrize(("data_name", "task", "metric_name"), TASKS)
@pytest.mark.parametrize("kind", list(OBJECTIVES))
def test_one_tiny_trial_through_the_harness(kind, data_name, task, metric_name):
    objective: Objective = OBJECTIVES[kind](task)
    data = load_data(data_name, task, 0)  # type: ignore[arg-type]
    cv = CVConfig(scheme="kfold", n_splits=2, seed=0)
    folds = make_folds(cv, data)
    metric = get_metric(metric_name, task)  # type: ignore[arg-type]
    study = optuna.create_study(direction=metric.direction, pruner=optuna.pruners.NopPruner())
    trial = study.ask()

    result = cross_validate(objective, {}, data, folds, metric, 0, trial_check(trial), n_jobs=2)

    assert np.isfinite(result.value) and len(result.fold_values) == 2
    assert result.oof_scores is not None and len(result.oof_scores) == len(data.y)
    assert result.fit_facts and all(np.isfinite(v) for v in result.fit_facts.values())
    assert all(isinstance(v, float) for curve in result.curves.values() for v in curve)
    steps = objective.max_steps({})
    reported = trial.storage.get_trial(trial._trial_id).intermediate_values
    if steps is None:  # fold-level pruning: the running mean after each fold
        assert sorted(reported) == [0, 1]
    else:  # epoch-level: every fold ends at its last step
        assert {steps - 1, 2 * steps - 1} <= set(reported)
        assert max(reported) == 2 * steps - 1

    model = objective.refit({}, data.X, data.y, data.n_classes, result.fit_facts, 0)
    scores = objective.predict(model, data.X[:5])
    assert scores.shape == (5, *result.oof_scores.shape[1:])
    assert objective.flavor in {"xgboost", "pytorch", "sklearn"}


@pytest.mark.parametrize("kind", list(OBJECTIVES))
def test_a_pruner_that_always_prunes_stops_in_the_first_fold(kind):
    objective: Objective = OBJECTIVES[kind]("classification")
    data = load_data("breast_cancer", "classification", 0)
    folds = make_folds(CVConfig(scheme="kfold", n_splits=3, seed=0), data)
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0)
    )
    trial = study.ask()
    with pytest.raises(FoldsPruned) as pruned:
        cross_validate(objective, {}, data, folds, get_metric("f1"), 0, trial_check(trial))
    assert len(pruned.value.result.fold_values) == 1
    if objective.max_steps({}) is not None:
        assert pruned.value.result.fit_facts["pruned_epoch"] == 1
        assert pruned.value.result.fit_facts["epochs_run"] == 1
        assert "pruned at epoch 1 of fold 0" in str(pruned.value)
