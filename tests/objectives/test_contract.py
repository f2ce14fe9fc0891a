"""The objective contract, checked the same way for every objective the package ships.

The objectives are discovered, not listed: every module of the ``objectives``
package is imported and every concrete ``Objective`` subclass defined there is
checked. A new objective passes these tests before any study uses it; only
settings that keep it fast (and data it can read) go in CASES, and an
objective missing there is checked with its defaults on breast_cancer.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pytest

import objectives
from hpo.config import CVConfig
from hpo.cv import FoldsPruned
from hpo.data import Dataset, load_data
from hpo.folds import make_folds
from hpo.metrics import get_metric
from objectives.base import FoldData, FoldOutput, Objective, Reporter
from tests.objectives.helpers import LORA_FAST, TINY_INTENTS, run_cv, trial_check


def shipped_objectives() -> list[type[Objective]]:
    """Every concrete Objective subclass defined in a module of the objectives package."""
    for module in pkgutil.walk_packages(objectives.__path__, "objectives."):
        importlib.import_module(module.name)
    found: set[type[Objective]] = set()
    stack = list(Objective.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("objectives.") and not inspect.isabstract(cls):
            found.add(cls)
    return sorted(found, key=lambda cls: cls.__qualname__)


# Per objective (by class name): fast settings, a (data, task, metric) it can learn, slow or not.
CASES: dict[str, dict[str, Any]] = {
    "XGBoostObjective": {"settings": {"max_rounds": 10, "early_stopping_rounds": 3}},
    "MLPObjective": {"settings": {"max_epochs": 2, "width": 8, "batch_size": 64}},
    "LoRAObjective": {
        "settings": {**LORA_FAST, "epochs": 2},
        "data": TINY_INTENTS,
        "slow": True,
    },
}
DEFAULT_CASE: dict[str, Any] = {"settings": {}, "data": "breast_cancer", "slow": False}
# (data, task, metric) for the objectives that read numbers: binary, multi-class, regression
NUMERIC_TASKS = [
    ("breast_cancer", "classification", "f1"),
    ("iris", "classification", "f1"),
    ("diabetes", "regression", "rmse"),
]
SHIPPED = shipped_objectives()


def case(cls: type[Objective]) -> dict[str, Any]:
    return DEFAULT_CASE | CASES.get(cls.__name__, {})


def params_of() -> list[Any]:
    """One pytest param per shipped objective, slow ones marked."""
    return [
        pytest.param(c, id=c.__name__, marks=[pytest.mark.slow] if case(c)["slow"] else [])
        for c in SHIPPED
    ]


def make(cls: type[Objective], task: str = "classification") -> Objective:
    """The objective with its fast settings, for ``task`` (every objective takes ``task``)."""
    return cls(**{**case(cls)["settings"], "task": task})


def data_of(cls: type[Objective]) -> Dataset:
    return load_data(case(cls)["data"], "classification", 0)


class Spy:
    """Wraps an objective's fit_predict to keep each FoldData it got and what it returned."""

    def __init__(self, objective: Objective) -> None:
        self.folds: list[FoldData] = []
        self.outputs: list[FoldOutput] = []
        fit_predict = objective.fit_predict

        def spy(params: dict[str, Any], fold: FoldData, report: Reporter | None = None):
            self.folds.append(fold)
            self.outputs.append(fit_predict(params, fold, report))
            return self.outputs[-1]

        objective.fit_predict = spy  # type: ignore[method-assign]


def test_discovery_finds_every_objective_shipped():
    names = {cls.__name__ for cls in SHIPPED}
    assert {"XGBoostObjective", "MLPObjective", "LoRAObjective"} <= names
    assert not any(inspect.isabstract(cls) for cls in SHIPPED)


@pytest.mark.parametrize("cls", params_of())
def test_fits_each_fold_and_reports_steps_within_max_steps(cls):
    objective = make(cls)
    data = data_of(cls)
    folds = make_folds(CVConfig(scheme="kfold", n_splits=2, seed=0), data)
    metric = get_metric("f1", "classification")
    trial = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner()).ask()

    result = run_cv(objective, {}, data, folds, metric, 0, trial_check(trial), n_jobs=2)

    assert np.isfinite(result.value) and len(result.fold_values) == 2
    assert result.oof_scores is not None and len(result.oof_scores) == len(data.y)
    assert result.fit_facts and all(np.isfinite(v) for v in result.fit_facts.values())
    assert set(result.fit_facts) <= set(cls.fit_fact_names), "every fit fact is declared"
    assert cls.fit_fact_names, "declared, so that study.objectives is checked before a trial"
    assert all(isinstance(v, float) for curve in result.curves.values() for v in curve)
    steps = objective.max_steps({})
    reported = set(trial.storage.get_trial(trial._trial_id).intermediate_values)
    if steps is None:  # fold-level pruning: the running mean after each fold
        assert reported == {0, 1}
    else:  # epoch-level: within each fold's span, and every fold ends at its last step
        assert {steps - 1, 2 * steps - 1} <= reported
        assert min(reported) >= 0 and max(reported) == 2 * steps - 1


@pytest.mark.parametrize("cls", params_of())
def test_never_sees_the_labels_of_the_rows_it_scores(cls):
    data = data_of(cls)
    folds = make_folds(CVConfig(scheme="holdout", test_size=0.25, seed=0), data)
    train, valid = folds[0]
    shuffled = data.y.copy()
    shuffled[valid] = np.roll(data.y[valid], 1)
    assert not np.array_equal(shuffled, data.y)
    metric = get_metric("f1", "classification")
    spies = []
    for y in (data.y, shuffled):
        objective = make(cls)
        spies.append(Spy(objective))
        run_cv(objective, {}, dataclasses.replace(data, y=y), folds, metric, 0)

    got = spies[0].folds[0]
    assert "y_valid" not in {f.name for f in dataclasses.fields(FoldData)}
    assert len(got.X_valid) == len(valid) and len(got.y_train) == len(train)
    np.testing.assert_array_equal(got.y_train, data.y[train])
    np.testing.assert_array_equal(spies[0].outputs[0].scores, spies[1].outputs[0].scores)


@pytest.mark.parametrize(
    "cls", [c for c in SHIPPED if not case(c)["slow"]], ids=lambda c: c.__name__
)
@pytest.mark.parametrize(("data_name", "task", "metric_name"), NUMERIC_TASKS)
def test_each_task_scores_in_the_shape_its_metric_expects(cls, data_name, task, metric_name):
    objective = make(cls, task)
    data = load_data(data_name, task, 0)
    folds = make_folds(CVConfig(scheme="kfold", n_splits=2, seed=0), data)
    result = run_cv(objective, {}, data, folds, get_metric(metric_name, task), 0)
    assert np.isfinite(result.value)
    expected = (len(data.y), data.n_classes) if data.n_classes > 2 else (len(data.y),)
    assert result.oof_scores is not None and result.oof_scores.shape == expected


@pytest.mark.parametrize(
    "cls", [c for c in SHIPPED if not case(c)["slow"]], ids=lambda c: c.__name__
)
def test_a_pruner_that_always_prunes_stops_in_the_first_fold(cls):
    objective = make(cls)
    data = data_of(cls)
    folds = make_folds(CVConfig(scheme="kfold", n_splits=3, seed=0), data)
    pruner = optuna.pruners.ThresholdPruner(lower=2.0)
    trial = optuna.create_study(direction="maximize", pruner=pruner).ask()
    with pytest.raises(FoldsPruned) as pruned:
        run_cv(objective, {}, data, folds, get_metric("f1"), 0, trial_check(trial))
    assert len(pruned.value.result.fold_values) == 1
    if objective.max_steps({}) is not None:
        assert pruned.value.result.fit_facts["pruned_epoch"] == 1
        assert pruned.value.result.fit_facts["epochs_run"] == 1


@pytest.mark.parametrize("cls", params_of())
def test_refits_on_all_the_rows_and_its_model_loads_back_from_mlflow(cls, tmp_path: Path):
    objective = make(cls)
    data = data_of(cls)
    model = objective.refit({}, data.X, data.y, data.n_classes, {}, 0)
    sample = data.X[:12]
    expected = objective.predict(model, sample)
    assert expected.shape[0] == 12 and np.isfinite(expected).all()

    last = np.arange(len(data.y)) >= 0.75 * len(data.y)
    relabelled = data.y.copy()
    relabelled[last] = (data.y[last] + 1) % max(data.n_classes, 2)
    other = objective.refit({}, data.X, relabelled, data.n_classes, {}, 0)
    assert not np.allclose(objective.predict(other, sample), expected), "the last rows count"

    flavour = importlib.import_module(f"mlflow.{objective.flavor}")
    folder = str(tmp_path / "model")
    if objective.flavor == "pyfunc":
        packages = list(model.packages)
        flavour.save_model(
            folder, python_model=model, artifacts=model.artifacts(), pip_requirements=packages
        )
        model_input: Any = [str(x) for x in sample]
    else:
        flavour.save_model(model, folder, input_example=sample, pip_requirements=["numpy"])
        model_input = sample
    loaded = mlflow.pyfunc.load_model(folder)
    assert flavour.FLAVOR_NAME in loaded.metadata.flavors
    got = np.asarray(loaded.predict(model_input), dtype=np.float64).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
