"""run: claim, evaluate and tell to the budget, end to end in both stores."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.errors import StudyStopped
from hpo.names import PARENT_ATTR, RUN_ATTR
from hpo.runner import run
from tests.hpo.runner.helpers import FAST_XGB, PRIOR, STUDIES, load, runs


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["grid", "random", "tpe", "cmaes"])
@pytest.mark.parametrize("study_name", list(STUDIES))
def test_each_study_runs_under_each_sampler(make_cfg, study_name: str, sampler: str) -> None:
    cfg = make_cfg(f"study={study_name}", f"sampler={sampler}", "study.n_trials=2", *FAST_XGB)
    summary = run(cfg)

    study = load(cfg)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert summary.counts["COMPLETE"] == 2
    rounds = study.best_trial.user_attrs["cv"]["info"]["n_rounds"]
    assert f"its fit, mean over folds: n_rounds {rounds:.4g}" in summary.text()
    parent, children = runs(cfg)
    metric = STUDIES[study_name]
    assert study.user_attrs[PARENT_ATTR] == parent.info.run_id
    for trial, child in zip(study.trials, children, strict=True):
        assert trial.user_attrs[RUN_ATTR] == child.info.run_id
        assert child.info.run_name == f"trial-{trial.number:04d}"
        assert child.info.status == "FINISHED"
        assert child.data.tags["hpo.state"] == "COMPLETE"
        assert child.data.tags["hpo.sampler"] == sampler
        assert child.data.params == {k: str(v) for k, v in trial.params.items()}
        assert child.data.metrics[metric] == pytest.approx(trial.value)
        assert f"{metric}_std" in child.data.metrics
        others = (
            {"oof_r2", "oof_mae", "oof_huber"}
            if metric == "rmse"
            else {"oof_mcc", "oof_specificity", "oof_cohen_kappa", "oof_roc_auc"}
        )
        assert others <= set(child.data.metrics), "every other metric of the task, out of fold"
        assert 1 <= child.data.metrics["n_rounds"] <= 20
        history = MlflowClient(cfg.tracking.uri).get_metric_history(
            child.info.run_id, f"{metric}_fold"
        )
        assert len(history) == 5
        assert np.mean([m.value for m in history]) == pytest.approx(trial.value)
    if sampler == "grid":
        grid_params = [t.params for t in study.trials]
        assert grid_params[0] != grid_params[1]


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_rerun_resumes_to_the_budget_without_duplicates(make_cfg, tmp_path, storage) -> None:
    url = [f"storage.url=sqlite:///{tmp_path}/optuna.db"] if storage == "sqlite" else []
    first = make_cfg("study=xgb_f1", "study.n_trials=2", *FAST_XGB, *url)
    run(first)
    name = first.study.name
    run(make_cfg("study=xgb_f1", "study.n_trials=3", *FAST_XGB, *url, name=name))
    run(make_cfg("study=xgb_f1", "study.n_trials=3", *FAST_XGB, *url, name=name))

    study = load(first)
    assert len(study.trials) == 3
    _, children = runs(first)
    assert [c.data.tags["hpo.trial"] for c in children] == ["0", "1", "2"]


def test_pruned_trials_are_pruned_in_both_stores(make_cfg) -> None:
    cfg = make_cfg(
        "study=tiny_prior",
        "pruner._target_=optuna.pruners.ThresholdPruner",
        "+pruner.lower=2.0",
        "~pruner.n_startup_trials",
        "~pruner.n_warmup_steps",
        "~pruner.interval_steps",
    )
    run(cfg)
    study = load(cfg)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    _, children = runs(cfg)
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["hpo.state"] == "PRUNED"
        assert child.data.metrics["n_folds_run"] == 1


def test_failing_and_nan_trials_are_recorded_and_the_study_goes_on(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "study.n_trials=4", "sampler=random", "+study.objective.fail_above=0.5")
    run(cfg)
    study = load(cfg)
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(finished) == 4 and failed, "some trials fail, and the budget still completes"
    _, children = runs(cfg)
    by_trial = {int(c.data.tags["hpo.trial"]): c for c in children}
    for trial in failed:
        child = by_trial[trial.number]
        assert child.info.status == "FAILED"
        assert "too large" in child.data.tags["hpo.fail_reason"]
        assert "too large" in trial.user_attrs["fail_reason"]

    nan = make_cfg(*PRIOR, "study.n_trials=1", "+study.objective.nan=true", "study.max_failures=2")
    with pytest.raises(StudyStopped, match="2 trials in a row failed, the last with Value") as err:
        run(nan)
    states = [t.state for t in load(nan).trials]
    assert states == [TrialState.FAIL] * 2
    assert err.value.summary is not None and err.value.summary.counts["FAIL"] == 2
    parent, _ = runs(nan)
    assert parent.info.status == "FAILED", "a study stopped by failures is not FINISHED"


def test_untracked_run_needs_no_mlflow(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "study.n_trials=2", "tracking.enabled=false")
    summary = run(cfg)
    assert summary.counts["COMPLETE"] == 2
    assert "mlflow" not in summary.where
