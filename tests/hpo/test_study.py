"""End to end: real Optuna storages and a real MLflow SQLite store, read back after each run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from optuna.trial import TrialState

from hpo.errors import UserError
from hpo.records import PARENT_ATTR, RUN_ATTR
from hpo.storage import open_storage
from hpo.study import make_plan, run

FAST_XGB = ["study.objective.max_rounds=20", "study.objective.early_stopping_rounds=5"]
STUDIES = {"xgb_f1": "f1", "xgb_imbalanced_ap": "average_precision", "xgb_rmse": "rmse"}
SHIPPED = sorted(p.stem for p in (Path(__file__).parents[2] / "studies").glob("*.yaml"))
PRIOR = ["study=tiny_prior", "pruner=none"]


def load(cfg: DictConfig) -> optuna.Study:
    return optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))


def runs(cfg: DictConfig) -> tuple[mlflow.entities.Run, list[mlflow.entities.Run]]:
    """The study's parent run and its child runs, read back from MLflow."""
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.study.name)
    assert experiment is not None
    every = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in every if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1, f"expected one parent run, found {len(parents)}"
    children = [r for r in every if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(every) - 1, "every other run is a child of the parent"
    return parents[0], sorted(children, key=lambda r: int(r.data.tags["hpo.trial"]))


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
def test_parent_run_has_summary_plots_config_and_loadable_model(make_cfg) -> None:
    cfg = make_cfg("study=xgb_f1", "study.n_trials=3", "pruner=none", *FAST_XGB)
    run(cfg)
    study = load(cfg)
    parent, _ = runs(cfg)
    client = MlflowClient(cfg.tracking.uri)

    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.metrics["n_complete"] == 3
    assert all(not t.intermediate_values for t in study.trials), "pruner=none: no reports"
    assert parent.data.tags["hpo.best_trial"] == str(study.best_trial.number)
    for key, value in study.best_params.items():
        assert parent.data.tags[f"best.{key}"] == str(value)
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "config.yaml" in files
    assert {
        "plots/optimization_history.html",
        "plots/slice.html",
        "plots/parallel_coordinate.html",
        "plots/param_importances.html",
    } <= plots

    mlflow.set_tracking_uri(cfg.tracking.uri)  # as a user does: models:/ URIs resolve there
    model = mlflow.pyfunc.load_model(parent.data.tags["hpo.model_uri"])
    from hpo.data import load_data

    data = load_data("breast_cancer", "classification", 0)
    predictions = np.asarray(model.predict(data.X[:10]))
    assert predictions.shape == (10,)
    assert ((predictions >= 0) & (predictions <= 1)).all()


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


def test_resume_with_another_space_or_direction_is_refused(make_cfg) -> None:
    first = make_cfg(*PRIOR, "study.n_trials=1")
    run(first)
    name = first.study.name
    changed = make_cfg(*PRIOR, "study.space.x.high=2.0", "study.n_trials=2", name=name)
    with pytest.raises(UserError, match=r"parameter x differs.*study\.name"):
        run(changed)
    flipped = make_cfg(*PRIOR, "study.n_trials=2", "study.direction=minimize", name=name)
    with pytest.raises(UserError, match="direction maximize"):
        run(flipped)
    assert len(load(first).trials) == 1


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
    with pytest.raises(RuntimeError, match="2 trials in a row failed"):
        run(nan)
    states = [t.state for t in load(nan).trials]
    assert states == [TrialState.FAIL] * 2


def test_grid_budget_defaults_to_grid_size(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "+study.space.x.step=0.5", "sampler=grid", "study.n_trials=null")
    run(cfg)
    values = sorted(t.params["x"] for t in load(cfg).trials)
    assert values == [0.0, 0.5, 1.0]


def test_a_grid_point_that_failed_once_is_run_again_and_no_point_twice(make_cfg) -> None:
    cfg = make_cfg(
        *PRIOR,
        "+study.space.x.step=0.5",
        "sampler=grid",
        "study.n_trials=null",
        "study.objective._target_=tests.hpo.helpers.FlakyObjective",
        "+study.objective.flaky=[0.5]",
        "n_jobs=1",
    )
    run(cfg)
    trials = load(cfg).trials
    complete = sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [0.0, 0.5, 1.0], "every point once: the failed one again, none twice"
    assert [t.params["x"] for t in trials if t.state == TrialState.FAIL] == [0.5]


def test_a_grid_point_that_always_fails_is_given_up_after_max_retry(make_cfg) -> None:
    cfg = make_cfg(
        *PRIOR,
        "+study.space.x.step=0.5",
        "sampler=grid",
        "study.n_trials=null",
        "+study.objective.fail_above=0.75",
        "storage.max_retry=2",
    )
    summary = run(cfg)
    trials = load(cfg).trials
    complete = sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [0.0, 0.5]
    assert [t.params["x"] for t in trials if t.state == TrialState.FAIL] == [1.0] * 3
    assert summary.counts["FAIL"] == 3, "tried once and retried twice, then given up"


def test_untracked_run_needs_no_mlflow(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "study.n_trials=2", "tracking.enabled=false")
    summary = run(cfg)
    assert summary.counts["COMPLETE"] == 2
    assert "mlflow" not in summary.where


@pytest.mark.parametrize("outcome", ["COMPLETE", "PRUNED", "FAIL"])
def test_telling_a_trial_another_worker_already_failed_leaves_it_failed(tmp_path, outcome) -> None:
    """The watchdog elsewhere failed it (stale heartbeat): our late tell must not raise or undo."""
    from hpo.cv import CVResult
    from hpo.records import TrialRecord
    from hpo.study import _tell

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))
    )
    study = optuna.create_study(storage=storage, direction="maximize")
    trial = study.ask()
    trial.report(0.5, 0)
    elsewhere = optuna.load_study(study_name=study.study_name, storage=storage)
    elsewhere.tell(trial.number, state=TrialState.FAIL)

    result = CVResult(0.9, 0.0, [0.9])
    tags = {"hpo.fail_reason": "boom"} if outcome == "FAIL" else {}
    _tell(study, trial, TrialRecord(trial.number, outcome, {}, tags=tags), result, [0.9])

    stored = study.trials[0]
    assert stored.state == TrialState.FAIL
    assert "cv" not in stored.user_attrs


def test_telling_twice_keeps_the_first_outcome(tmp_path) -> None:
    """A retried tell after a dropped connection: the second is a no-op, not an error."""
    from hpo.cv import CVResult
    from hpo.records import TrialRecord
    from hpo.study import _tell

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    record = TrialRecord(trial.number, "COMPLETE", {})
    _tell(study, trial, record, CVResult(0.9, 0.0, [0.9]), [0.9])
    _tell(study, trial, record, CVResult(0.9, 0.0, [0.9]), [0.9])
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].value == 0.9


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe", "cmaes"])
@pytest.mark.parametrize("study_name", SHIPPED)
def test_every_shipped_study_plans_under_each_sampler(make_cfg, study_name, sampler) -> None:
    """Its space, objective settings and budget pass every check made before the first trial."""
    cfg = make_cfg(f"study={study_name}", f"sampler={sampler}")
    if sampler == "cmaes" and len(cfg.study.get("objectives") or []) > 0:
        with pytest.raises(UserError, match="sampler=cmaes optimizes one objective"):
            make_plan(cfg)
        return
    plan = make_plan(cfg)
    assert plan.sampler_kind == sampler
    assert plan.budget is not None and plan.budget >= 1
    if sampler == "grid":
        assert plan.budget <= plan.space.grid_size()


def test_an_interrupt_while_a_trial_starts_still_fails_it_and_kills_its_run(
    make_cfg, monkeypatch
) -> None:
    """Ctrl-C (or SIGTERM) just as the trial's owner is written: FAIL and KILLED, not RUNNING."""
    cfg = make_cfg(*PRIOR, "study.n_trials=2")
    real = optuna.trial.Trial.set_user_attr
    calls: list[str] = []

    def interrupted_once(trial: optuna.trial.Trial, key: str, value: object) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real(trial, key, value)

    monkeypatch.setattr(optuna.trial.Trial, "set_user_attr", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    monkeypatch.undo()

    (trial,) = load(cfg).trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("KeyboardInterrupt")
    _, (child,) = runs(cfg)
    assert child.info.status == "KILLED"
