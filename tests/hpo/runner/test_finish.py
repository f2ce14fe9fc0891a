"""finish: the parent run's summary, plots, config and loadable best model."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hpo.runner import run
from tests.hpo.runner.helpers import FAST_XGB, PRIOR, load, runs


@pytest.mark.slow
def test_parent_run_has_summary_plots_config_and_loadable_model(make_cfg) -> None:
    cfg = make_cfg("study=xgb_f1", "study.n_trials=3", "pruner=none", *FAST_XGB)
    run(cfg)
    study = load(cfg)
    parent, _ = runs(cfg)
    client = MlflowClient(cfg.tracking.uri)

    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["f1"] == pytest.approx(study.best_value), "named after the metric"
    assert "best_value" not in parent.data.metrics
    assert parent.data.metrics["n_complete"] == 3
    assert all(not t.intermediate_values for t in study.trials), "pruner=none: no reports"
    assert parent.data.tags["hpo.best_trial"] == str(study.best_trial.number)
    for key, value in study.best_params.items():
        assert parent.data.tags[f"best.{key}"] == str(value)
    assert parent.data.params == {k: str(v) for k, v in study.best_params.items()}
    assert parent.data.tags["hpo.params_trial"] == str(study.best_trial.number)
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.yaml", "report.html"} <= files
    page = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/report.html")
    for title in ("Optimization History", "Slice Plot", "Parallel Coordinate", "Importances"):
        assert title in page, title
    assert page.count("plotly.js v") == 1, "one copy of plotly.js for every figure"
    assert '<script src="https://cdn.plot.ly' not in page, "it opens offline"

    mlflow.set_tracking_uri(cfg.tracking.uri)  # as a user does: models:/ URIs resolve there
    model = mlflow.pyfunc.load_model(parent.data.tags["hpo.model_uri"])
    import pandas as pd

    from hpo.data import load_data

    data = load_data("breast_cancer", "classification", 0)
    frame = pd.DataFrame(data.X[:10], columns=data.feature_names)  # the signature's columns
    predictions = np.asarray(model.predict(frame))
    assert predictions.shape == (10,)
    assert ((predictions >= 0) & (predictions <= 1)).all()


def test_the_winner_is_tested_against_the_next_best_on_its_folds(make_cfg) -> None:
    """The prior objective scores every trial alike (AUC 0.5 on each fold): no trial can be
    told apart from the winner, and the summary says so rather than crown it."""
    cfg = make_cfg(*PRIOR, "study.n_trials=4", "cv=kfold", "cv.n_splits=3")
    summary = run(cfg)
    assert summary is not None and summary.compared == 3
    assert sorted(summary.ties) == sorted({0, 1, 2, 3} - {summary.best_number})
    assert "cannot be told apart from trials" in summary.text()
    parent, _ = runs(cfg)
    assert parent.data.tags["hpo.ties"] == ",".join(str(t) for t in summary.ties)


def test_one_validation_score_is_not_tested(make_cfg) -> None:
    summary = run(make_cfg(*PRIOR, "study.n_trials=2", "cv=holdout"))
    assert summary is not None and summary.compared == 0
    assert "t-test" not in summary.text()


def test_a_study_finished_again_or_at_once_elsewhere_keeps_one_best_model(make_cfg) -> None:
    """A run cut off between logging the model and tagging the parent, or two processes
    logging it at the same moment: the study still ends with one model (issue 11, defect 6)."""
    from hpo.tracking.models import log_model
    from tests.hpo.helpers import PriorObjective

    cfg = make_cfg(*PRIOR, "study.n_trials=2")
    run(cfg)
    parent, _ = runs(cfg)
    client = MlflowClient(cfg.tracking.uri)
    first = parent.data.tags["hpo.model_uri"]
    best = parent.data.tags["hpo.model_trial"]

    again = SimpleNamespace(  # the tracker of a second process finishing the same study
        uri=cfg.tracking.uri,
        client=client,
        parent_id=parent.info.run_id,
        experiment_id=parent.info.experiment_id,
    )
    from sklearn.dummy import DummyClassifier

    X, y = np.zeros((4, 30)), np.array([0, 1, 0, 1])
    model = DummyClassifier().fit(X, y)
    log_model(
        again,  # type: ignore[arg-type]
        PriorObjective(),
        model,
        X,
        model.predict_proba(X)[:, 1],
        int(best),
        feature_names=[f"x{i}" for i in range(30)],
    )
    client.delete_tag(parent.info.run_id, "hpo.model_trial")  # cut off before the tag
    run(cfg)  # resumed: the budget is used, so it only finishes again

    parent, _ = runs(cfg)
    models = client.search_logged_models([parent.info.experiment_id])
    assert [m.model_uri for m in models] == [first], "one model: the oldest is kept"
    assert parent.data.tags["hpo.model_uri"] == first
    assert parent.data.tags["hpo.model_trial"] == best


def test_the_summary_and_parent_run_carry_the_bbc_cv_estimate_of_the_winner(make_cfg) -> None:
    """Each complete trial keeps its out-of-fold scores; at the end BBC-CV corrects the
    winner's score for having been chosen, on the summary and the parent run (issue 12)."""
    cfg = make_cfg("study=xgb_f1", "study.n_trials=3", "pruner=none", *FAST_XGB)
    summary = run(cfg)
    study = load(cfg)
    rows = len(study.trials[0].user_attrs["oof"])
    assert rows == 569 and all(len(t.user_attrs["oof"]) == rows for t in study.trials)
    assert summary is not None and summary.bbc is not None
    assert summary.bbc.n_configs == 3 and summary.bbc.n_boot == 1000
    assert summary.bbc.low <= summary.bbc.value <= summary.bbc.high
    assert "BBC-CV f1 " in summary.text()
    parent, _ = runs(cfg)
    assert parent.data.metrics["bbc_f1"] == pytest.approx(summary.bbc.value)
    assert parent.data.metrics["bbc_f1_low"] <= parent.data.metrics["bbc_f1_high"]


def test_bbc_boot_0_keeps_no_out_of_fold_scores_and_estimates_nothing(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "study.n_trials=2", "evaluation.bbc_boot=0")
    summary = run(cfg)
    assert all("oof" not in t.user_attrs for t in load(cfg).trials)
    assert summary is not None and summary.bbc is None and "BBC-CV" not in summary.text()
    parent, _ = runs(cfg)
    assert not any(k.startswith("bbc_") for k in parent.data.metrics)


@pytest.mark.slow
def test_the_winners_evaluation_pages_and_cost_threshold_are_on_the_parent_run(make_cfg) -> None:
    """The report from the winner's out-of-fold scores and, with held-out rows, from the
    refit winner's scores on them; the threshold chosen by cost on out-of-fold scores."""
    cfg = make_cfg(
        "study=xgb_f1",
        "study.n_trials=3",
        "pruner=none",
        "evaluation.cost.fn=5",
        "evaluation.test_size=0.2",
        *FAST_XGB,
    )
    summary = run(cfg)
    assert summary is not None and summary.threshold is not None
    assert (summary.threshold.cost_fp, summary.threshold.cost_fn) == (1.0, 5.0)
    assert summary.threshold.cost <= summary.threshold.cost_at_half
    assert "threshold " in summary.text() and "by cost (fp 1, fn 5)" in summary.text()
    parent, _ = runs(cfg)
    assert parent.data.metrics["threshold"] == pytest.approx(summary.threshold.value)
    assert parent.data.metrics["expected_cost"] <= parent.data.metrics["expected_cost_at_half"]
    assert parent.data.tags["hpo.bias_variance"] == summary.bias_variance
    assert f"bias/variance: {summary.bias_variance}" in summary.text()
    page = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/report.html")
    sections = ("on its out-of-fold predictions", "on its held-out test rows", "bias and variance")
    for heading in sections:  # evaluation.curves=auto: a cheap winner's curves are drawn
        assert heading in page, heading
    assert "Validation curve along" in page and "Learning curve" in page
    assert f"threshold {summary.threshold.value:.3g}" in page
    assert page.count("plotly.js v") == 1

    mlflow.set_tracking_uri(cfg.tracking.uri)  # the decision model loads its scorer by URI
    scorer = mlflow.pyfunc.load_model(parent.data.tags["hpo.model_uri"])
    decider = mlflow.pyfunc.load_model(parent.data.tags["hpo.decision_model_uri"])
    import pandas as pd

    from hpo.data import load_data

    data = load_data("breast_cancer", "classification", 0)
    X = pd.DataFrame(data.X[:40], columns=data.feature_names)  # the signature's columns
    scores = np.asarray(scorer.predict(X))
    cut = summary.threshold.value
    assert np.array_equal(decider.predict(X), (scores >= cut).astype(int)), "it applies the cut"
    assert np.array_equal(decider.predict(X, params={"threshold": 0.5}), (scores >= 0.5) * 1)
    assert decider.metadata.metadata["threshold"] == pytest.approx(cut)
    assert decider.metadata.metadata["cost_fn"] == 5.0


@pytest.mark.slow
def test_a_full_artifact_disk_at_the_end_stops_in_one_line_and_closes_the_parent_run(
    make_cfg, monkeypatch
) -> None:
    """No room for the plots (tracking.artifact_location's disk full): nothing waits for
    them in the spool and the disk does not free itself, so the study stops with the disk
    named and its summary (StudyStopped: status 1), every trial's run whole and the parent
    run FAILED, not RUNNING; once space is freed, the same command logs the study's end
    (issue 11: the full-disk-artifacts row of benchmarks/faults)."""
    import errno

    from hpo.errors import StudyStopped

    cfg = make_cfg(*PRIOR, "study.n_trials=2")
    room = MlflowClient.log_text

    def no_room(self: MlflowClient, run_id: str, text: str, artifact_file: str) -> None:
        if artifact_file == "report.html":  # the config, at the start, still fits
            raise OSError(errno.ENOSPC, "No space left on device")
        room(self, run_id, text, artifact_file)

    monkeypatch.setattr(MlflowClient, "log_text", no_room)
    with pytest.raises(StudyStopped, match=r"^the disk is full \(\[Errno 28\]") as stopped:
        run(cfg)
    assert stopped.value.summary is not None, "the summary of what finished is printed"
    parent, children = runs(cfg)
    assert parent.info.status == "FAILED"
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]

    monkeypatch.setattr(MlflowClient, "log_text", room)  # space freed
    run(cfg)
    parent, _ = runs(cfg)
    assert parent.info.status == "FINISHED" and "hpo.model_trial" in parent.data.tags
    files = {a.path for a in MlflowClient(cfg.tracking.uri).list_artifacts(parent.info.run_id)}
    assert "report.html" in files, "the plots are on the parent run"
