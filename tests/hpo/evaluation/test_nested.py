"""Nested CV (hpo/evaluation/nested/): the outer-test rows stay unseen, the estimate is the
mean of the outer scores, a rerun resumes, refused outer schemes, the MLflow layout, and on
data with a known signal an estimate closer to the truth than the study's best CV score."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from hydra.core.config_store import ConfigStore
from mlflow.tracking import MlflowClient
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold

from hpo.check.compare import Check
from hpo.config import Config
from hpo.errors import UserError
from hpo.evaluation.nested import inner_name, nested_cv, outer_folds, param_spread, with_nested
from hpo.metrics import get_metric
from hpo.runner import make_plan
from hpo.storages import open_storage
from objectives.base import FoldData, FoldOutput, Objective, Reporter
from tests.hpo.helpers import PriorObjective
from tests.hpo.runner.helpers import PRIOR, load

# tiny_prior's rows in 3 outer folds of 2 trials each: a nested run costs about a second.
NESTED = [*PRIOR, "evaluation.nested.outer=3", "evaluation.nested.trials=2"]
SIGNAL_ROWS, TRUTH_ROWS = 150, 20_000


@dataclass
class RowsObjective(PriorObjective):
    """PriorObjective that writes down every row it is shown: ("fit", rows) for a fold's
    training and validation rows, ("refit", rows), ("predict", rows), each row as its bytes."""

    events: list[tuple[str, list[bytes]]] = field(default_factory=list)

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        self.events.append(("fit", [r.tobytes() for r in (*fold.X_train, *fold.X_valid)]))
        return super().fit_predict(params, fold, report)

    def refit(self, params, X, y, n_classes, info, seed) -> Any:
        self.events.append(("refit", [r.tobytes() for r in X]))
        return super().refit(params, X, y, n_classes, info, seed)

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        self.events.append(("predict", [r.tobytes() for r in X]))
        return super().predict(model, X)


@dataclass
class GuessingObjective(Objective):
    """A linear model (ridge least squares on +-1 labels) that guesses on a share of the rows
    (``guess``): which rows is the luck of its ``luck`` parameter. Every value of ``luck``
    is as good as any other on new rows, but on few rows some look better on the folds: a
    noisy metric, so the best CV score of many trials is the luckiest, not the best."""

    task: str = "classification"
    flavor: str = "sklearn"
    requirements: tuple[str, ...] = ("numpy",)
    guess: float = 0.25

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        model = self.refit(params, fold.X_train, fold.y_train, 2, {}, fold.seed)
        return FoldOutput(self.predict(model, fold.X_valid))

    def refit(self, params, X, y, n_classes, fit_facts, seed) -> Any:
        A = np.c_[X, np.ones(len(X))]
        ridge = params["alpha"] * np.eye(A.shape[1])
        return np.linalg.solve(A.T @ A + ridge, A.T @ (2.0 * y - 1.0)), int(params["luck"])

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        weights, luck = model
        p = 1.0 / (1.0 + np.exp(-np.c_[X, np.ones(len(X))] @ weights))
        guessed = np.random.default_rng([luck, len(X)]).random(len(X)) < self.guess
        return np.where(guessed, 1.0 - p, p)


ConfigStore.instance().store(
    group="study",
    name="guessing",
    node={
        "name": "guessing",
        "objective": {"_target_": f"{__name__}.GuessingObjective"},
        "data": {"path": "signal.csv", "target": "label"},  # written by the test, in its cwd
        "cv": {"scheme": "stratified_kfold", "n_splits": 5},
        "metric": "accuracy",
        "n_trials": 40,
        "space": {
            "alpha": {"type": "float", "low": 0.01, "high": 100.0, "log": True},
            "luck": {"type": "int", "low": 0, "high": 1_000_000},
        },
    },
)


def _rows_of(events: list[tuple[str, list[bytes]]]) -> list[dict[str, set[bytes]]]:
    """The events cut into outer folds (each ends with its refit and predict): per fold, the
    rows its inner trials saw, the rows refit on, the rows predicted."""
    folds: list[dict[str, set[bytes]]] = [{"fit": set()}]
    for kind, rows in events:
        if kind == "fit" and "predict" in folds[-1]:
            folds.append({"fit": set()})
        folds[-1].setdefault(kind, set()).update(rows)
    return folds


def test_no_inner_study_sees_its_outer_test_rows(make_cfg) -> None:
    cfg = make_cfg(*NESTED, f"study.objective._target_={__name__}.RowsObjective")
    plan = make_plan(cfg)
    assert isinstance(plan.objective, RowsObjective)
    row = [r.tobytes() for r in plan.data.X]
    assert len(set(row)) == len(row), "breast_cancer's rows are distinct: a row is its bytes"

    result = nested_cv(cfg, plan)

    outer = outer_folds(plan, 3)
    seen = _rows_of(plan.objective.events)
    assert len(seen) == len(outer) == len(result.folds) == 3
    for (train, test), rows in zip(outer, seen, strict=True):
        test_rows, train_rows = {row[i] for i in test}, {row[i] for i in train}
        assert rows["fit"] == train_rows, "the inner CV splits exactly the outer-training rows"
        assert rows["fit"].isdisjoint(test_rows)
        assert rows["refit"] == train_rows, "refit on every outer-training row"
        assert rows["predict"] == test_rows, "scored on the outer-test rows only"
    assert sorted(np.concatenate([test for _, test in outer])) == list(range(len(row)))


def test_the_estimate_is_the_mean_of_the_outer_scores(make_cfg) -> None:
    """PriorObjective refits the class prior: each outer score is that prior's log loss on
    the outer-test rows, computed here again from the folds kfold would make."""
    cfg = make_cfg(*NESTED, "study.metric=log_loss")
    plan = make_plan(cfg)
    result = nested_cv(cfg, plan)

    X, y = plan.data.X, plan.data.y
    again = []
    for train, test in KFold(3, shuffle=True, random_state=0).split(X):
        prior = DummyClassifier(strategy="prior").fit(X[train], y[train])
        again.append(log_loss(y[test], prior.predict_proba(X[test])[:, 1], labels=[0, 1]))
    scores = [f.value for f in result.folds]
    assert scores == pytest.approx(again)
    assert result.value == pytest.approx(np.mean(scores))
    assert result.std == pytest.approx(np.std(scores))
    assert [f.study for f in result.folds] == [inner_name(cfg.study.name, k) for k in range(3)]
    assert [f.train_rows + f.test_rows for f in result.folds] == [len(y)] * 3
    assert result.lines()[0].startswith(
        f"nested CV log_loss {result.value:.3f} ± {result.std:.3f} over 3 outer folds "
        "(inner studies of 2 trials each"
    )


def _trials(cfg: Config, name: str) -> int:
    """How many trials study ``name`` has in the test's storage."""
    return len(optuna.load_study(study_name=name, storage=open_storage(cfg.storage)).trials)


def _inner_trials(cfg: Config) -> list[int]:
    return [_trials(cfg, inner_name(cfg.study.name, k)) for k in range(3)]


def test_a_rerun_resumes_the_inner_studies(make_cfg) -> None:
    cfg = make_cfg(*NESTED, "tracking.enabled=false")  # MLflow on a rerun: the test below
    first = with_nested(cfg)
    assert first is not None and first.nested is not None
    assert _inner_trials(cfg) == [2, 2, 2]

    again = with_nested(cfg)  # complete: no new trial, the same winners and scores
    assert again is not None and again.nested is not None
    assert _inner_trials(cfg) == [2, 2, 2]
    assert again.nested == first.nested

    more = make_cfg(
        *NESTED, "tracking.enabled=false", "evaluation.nested.trials=3", name=cfg.study.name
    )
    with_nested(more)
    assert _inner_trials(cfg) == [3, 3, 3], "a larger budget resumes each inner study"


def test_the_summary_shows_the_study_then_the_nested_estimate(make_cfg) -> None:
    cfg = make_cfg(*NESTED, "tracking.enabled=false")
    summary = with_nested(cfg)
    assert summary is not None and summary.nested is not None
    text = summary.text()
    assert text.startswith(f"study {cfg.study.name}: 3 complete")  # the study ran first
    assert "\n  nested CV roc_auc 0.500 ± 0.000 over 3 outer folds" in text
    assert "\n  outer winners: x " in text
    assert _trials(cfg, cfg.study.name) == 3


def test_only_runs_the_nested_part(make_cfg) -> None:
    cfg = make_cfg(*NESTED, "tracking.enabled=false", "evaluation.nested.only=true")
    summary = with_nested(cfg)
    assert summary is not None and summary.nested is not None
    assert summary.counts == {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}  # the study never ran
    names = optuna.get_all_study_names(open_storage(cfg.storage))
    assert sorted(names) == [inner_name(cfg.study.name, k) for k in range(3)]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["cv=loo"], "leave-one-out"),
        (["cv=holdout"], "holdout"),
        (["evaluation.nested.outer=1"], "2 or more outer folds"),
        (["evaluation.nested.outer=0", "evaluation.nested.only=true"], "outer is 0"),
    ],
)
def test_outer_schemes_that_cannot_make_folds_are_refused_in_one_line(
    make_cfg, overrides: list[str], named: str
) -> None:
    cfg = make_cfg(*NESTED, *overrides)
    with pytest.raises(UserError) as refused:
        with_nested(cfg)
    line = str(refused.value)
    assert named in line and "\n" not in line
    assert ("cv=stratified_kfold" in line) or ("evaluation.nested.outer=" in line)
    assert optuna.get_all_study_names(open_storage(cfg.storage)) == [], "refused before a trial"


def test_mlflow_has_the_nested_run_and_one_child_per_outer_fold(make_cfg) -> None:
    cfg = make_cfg(*NESTED)
    summary = with_nested(cfg)
    assert summary is not None and summary.nested is not None
    with_nested(make_cfg(*NESTED, "evaluation.nested.only=true", name=cfg.study.name))  # again
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.study.name)
    assert experiment is not None
    every = client.search_runs([experiment.experiment_id], max_results=1000)
    nested = [r for r in every if r.data.tags.get("hpo.role") == "nested"]
    assert len(nested) == 1 and nested[0].info.run_name == "nested"
    run = nested[0]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["nested_roc_auc"] == pytest.approx(summary.nested.value)
    assert run.data.metrics["nested_roc_auc_std"] == pytest.approx(summary.nested.std)
    assert run.data.params == {"outer": "3", "trials": "2", "cv": "kfold"}

    children = [r for r in every if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["outer-0", "outer-1", "outer-2"]
    for child in children:
        fold = summary.nested.folds[int(child.data.tags["hpo.outer_fold"])]
        assert child.data.tags["hpo.role"] == "outer"
        assert child.data.tags["hpo.inner_study"] == fold.study
        assert child.data.metrics["outer_roc_auc"] == pytest.approx(fold.value)
        assert child.data.metrics["inner_best_roc_auc"] == pytest.approx(fold.inner_best)
        assert child.data.params == {k: str(v) for k, v in fold.params.items()}
    study_runs = [r for r in every if r.data.tags.get("hpo.role") == "study"]
    assert len(study_runs) == 1, "the study keeps its own parent run beside the nested one"
    mismatches = Check(load(cfg), client, experiment.experiment_id).mismatches()
    assert mismatches == [], "hpo.check does not take the nested runs for trials' orphans"


def test_param_spread_says_ranges_values_and_counts() -> None:
    chosen = [
        {"lr": 0.05, "depth": 3, "policy": "lossguide", "alpha": 0.1},
        {"lr": 0.2, "depth": 6, "policy": "lossguide"},
        {"lr": 0.1, "depth": 3, "policy": "depthwise"},
    ]
    assert param_spread(chosen) == [
        "lr 0.05..0.2",
        "depth 3, 6",
        "policy lossguide x2, depthwise",
        "alpha 0.1 (in 1 of 3)",
    ]


@pytest.mark.slow
def test_on_a_known_signal_nested_cv_is_closer_to_the_truth_than_the_best_cv_score(
    make_cfg, tmp_path: Path
) -> None:
    """150 rows, 40 trials that differ mostly in luck (GuessingObjective): the study's best
    CV accuracy is the luckiest trial's. The truth is the procedure's own result, the study's
    winner refit on its 150 rows, scored on 20,000 fresh rows from the same generator."""
    X, y = make_classification(
        SIGNAL_ROWS + TRUTH_ROWS, n_features=10, n_informative=3, flip_y=0.1, random_state=0
    )
    X = X.astype(np.float32)  # as the CSV loader reads it
    frame = pd.DataFrame(X[:SIGNAL_ROWS], columns=[f"x{i}" for i in range(X.shape[1])])
    frame.assign(label=y[:SIGNAL_ROWS]).to_csv(tmp_path / "signal.csv", index=False)
    cfg = make_cfg(
        "study=guessing",
        "sampler=random",
        "pruner=none",
        "tracking.enabled=false",
        "evaluation.nested.outer=5",
        "n_jobs=1",  # folds one after another: a small fit gains nothing from threads
        "evaluation.curves=false",
    )
    summary = with_nested(cfg)
    assert summary is not None and summary.nested is not None and summary.best_value is not None

    objective = GuessingObjective()
    winner = objective.refit(summary.best_params, X[:SIGNAL_ROWS], y[:SIGNAL_ROWS], 2, {}, 0)
    accuracy = get_metric("accuracy", "classification")
    truth = accuracy(y[SIGNAL_ROWS:], objective.predict(winner, X[SIGNAL_ROWS:]))
    raw, nested = summary.best_value, summary.nested.value
    bbc = f", BBC-CV {summary.bbc.value:.3f}" if summary.bbc is not None else ""
    said = f"raw best CV {raw:.3f}, nested {nested:.3f}, true {truth:.3f}{bbc}"
    print(said)  # pytest -s: the three numbers of this run
    assert raw - truth > 0.05, f"the study's best CV score should be optimistic: {said}"
    assert abs(nested - truth) < 0.5 * (raw - truth), f"nested CV should be closer: {said}"
