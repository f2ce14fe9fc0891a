"""MLP studies end to end: real torch, an Optuna journal and an MLflow SQLite store, read back."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.data import load_data
from hpo.runner import make_plan, run
from tests.hpo.helpers import ALWAYS_PRUNE
from tests.hpo.runner.helpers import load, runs

# Two folds, three epochs: enough to see curves, reports and a refit, in seconds.
FAST = ["study.objective.max_epochs=3", "study.objective.patience=2", "study.cv.n_splits=2"]
STUDIES = {"mlp_digits": "f1", "mlp_rmse": "rmse"}  # multi-class and regression; binary below


@pytest.mark.slow
@pytest.mark.parametrize("study_name", list(STUDIES))
def test_mlp_study_logs_curves_and_a_loadable_pipeline(make_cfg, study_name: str) -> None:
    # median with 5 startup trials never prunes 2 trials, but they report every epoch
    cfg = make_cfg(f"study={study_name}", "study.n_trials=2", "pruner=median", *FAST)
    run(cfg)

    study = load(cfg)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for trial in study.trials:  # fold i's epoch e is step i * 3 + e; each fold ends at its step 2
        assert {2, 5} <= set(trial.intermediate_values) <= set(range(6))
    parent, children = runs(cfg)
    client = MlflowClient(cfg.tracking.uri)
    metric = STUDIES[study_name]
    for child in children:
        m = child.data.metrics
        assert 1 <= m["best_epoch"] <= m["epochs_run"] <= 3
        assert m["n_params"] > 0 and m["fit_seconds"] > 0
        epochs = round(m["epochs_run"] * m["n_folds_run"])  # mean per fold times folds
        for curve in ("train_loss", "inner_valid_loss", f"inner_valid_{metric}"):
            folds = sorted(k for k in m if k.startswith(f"{curve}/fold_"))  # a line per fold
            assert len(folds) == m["n_folds_run"]
            steps = [h.step for f in folds for h in client.get_metric_history(child.info.run_id, f)]
            assert len(steps) == epochs  # each fold's epochs, from its own step 0
            assert steps.count(0) == len(folds)

    mlflow.set_tracking_uri(cfg.tracking.uri)  # as a user does: models:/ URIs resolve there
    pyfunc = mlflow.pyfunc.load_model(parent.data.tags["hpo.model_uri"])
    plan = make_plan(cfg)
    data = load_data(cfg.study.data, plan.objective.task, 0)  # type: ignore[arg-type]
    best = study.best_trial
    info = best.user_attrs["cv"]["info"]
    model = plan.objective.refit(best.params, data.X, data.y, data.n_classes, info, 0)
    expected = plan.objective.predict(model, data.X[:20])
    import pandas as pd

    frame = pd.DataFrame(data.X[:20], columns=data.feature_names)  # the signature's columns
    got = np.asarray(pyfunc.predict(frame)).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    flavors = mlflow.models.get_model_info(parent.data.tags["hpo.model_uri"]).flavors
    assert "pytorch" in flavors and "python_function" in flavors


@pytest.mark.slow
def test_a_pruner_that_always_prunes_stops_each_trial_at_its_first_epoch(make_cfg) -> None:
    cfg = make_cfg("study=mlp_f1", "study.n_trials=2", "cv=holdout", *ALWAYS_PRUNE, *FAST)
    run(cfg)
    study = load(cfg)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [0] for t in study.trials)
    _, children = runs(cfg)
    client = MlflowClient(cfg.tracking.uri)
    for child in children:
        assert child.data.tags["hpo.state"] == "PRUNED"
        assert child.data.tags["hpo.prune_reason"] == "pruned at epoch 1 of fold 0"
        assert child.data.metrics["pruned_epoch"] == 1
        assert child.data.metrics["pruned_fold"] == 0
        assert child.data.metrics["epochs_run"] == 1
        assert len(client.get_metric_history(child.info.run_id, "train_loss/fold_0")) == 1


@pytest.mark.slow
def test_a_trial_pruned_in_its_second_fold_says_where_in_mlflow(make_cfg) -> None:
    """Step = fold * max_epochs + epoch - 1: step 4 is fold 1's second epoch (3 epochs a fold).

    The two folds run side by side, and fold 1's reports are judged after fold 0's
    three, in step order: the fold named is the one whose step was pruned.
    """
    prune_from_step_4 = [
        "pruner._target_=optuna.pruners.ThresholdPruner",
        "+pruner.lower=2.0",
        "~pruner.n_startup_trials",
        "pruner.n_warmup_steps=4",
    ]
    cfg = make_cfg("study=mlp_f1", "study.n_trials=1", "n_jobs=2", *prune_from_step_4, *FAST)
    run(cfg)
    (trial,) = load(cfg).trials
    assert trial.state == TrialState.PRUNED
    assert max(trial.intermediate_values) == 4
    _, (child,) = runs(cfg)
    assert child.data.tags["hpo.prune_reason"] == "pruned at epoch 2 of fold 1"
    assert (child.data.metrics["pruned_fold"], child.data.metrics["pruned_epoch"]) == (1, 2)


@pytest.mark.slow
def test_a_diverging_trial_fails_with_the_reason_and_the_study_goes_on(make_cfg) -> None:
    cfg = make_cfg(
        "study=mlp_rmse", "study.n_trials=2", "sampler=random", "pruner=none", "cv=holdout", *FAST
    )
    cfg.study.space = {
        "optimizer": {"type": "categorical", "choices": ["sgd"]},
        "lr": {"type": "categorical", "choices": [1.0e-3, 1.0e12]},  # 1e12 diverges
    }
    run(cfg)
    study = load(cfg)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert failed and len(complete) == 2
    assert all(t.params["lr"] == 1.0e12 for t in failed)
    assert all("training loss is" in t.user_attrs["fail_reason"] for t in failed)
    _, children = runs(cfg)
    by_trial = {int(c.data.tags["hpo.trial"]): c for c in children}
    for trial in failed:
        child = by_trial[trial.number]
        assert child.info.status == "FAILED"
        assert "lower lr" in child.data.tags["hpo.fail_reason"]
