"""What MLflow's UI says about a finished study: its description and runs-table view."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from hpo.config import TrackingConfig
from hpo.names import NOTE_TAG, PARAMS_TRIAL_TAG, VIEW_TAG
from hpo.runner import run
from hpo.tracking.tracker import Tracker
from tests.hpo.runner.helpers import PRIOR, load, runs


def test_a_finished_study_opens_on_its_metric_state_and_parameters(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "study.n_trials=2")
    run(cfg)
    study = load(cfg)
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.study.name)
    assert experiment is not None
    view = json.loads(experiment.tags[VIEW_TAG])
    assert view["orderByKey"] == "metrics.`roc_auc`" and view["orderByAsc"] is False
    params = {f"params.`{name}`" for name in study.best_params}
    assert {"metrics.`roc_auc`", "metrics.`roc_auc_std`", "tags.`hpo.state`"} | params <= set(
        view["selectedColumns"]
    )
    parent, _ = runs(cfg)
    note = parent.data.tags[NOTE_TAG]
    assert note == experiment.tags[NOTE_TAG], "the experiment says the same"
    assert f"**{study.best_value:.4f}**" in note and f"(trial {study.best_trial.number})" in note
    assert "2 complete" in note and "`report.html`" in note
    assert "tiny_prior" in note and "roc_auc" in note


def test_the_parent_s_params_stay_the_first_best_s_and_say_whose(tmp_path: Path) -> None:
    """MLflow params never change: a resumed study's new best is in the best.* tags, and
    the params' trial is named rather than a second write failing the study's end."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(TrackingConfig(uri=uri, writer="inline", spool=str(tmp_path)), "s", "tpe")
    parent = tracker.open_parent(None, {})
    tracker.log_best_params(3, {"depth": 4, "eta": 0.1})
    tracker.log_best_params(9, {"depth": 6, "eta": 0.3})
    run = MlflowClient(uri).get_run(parent)
    assert run.data.params == {"depth": "4", "eta": "0.1"}
    assert run.data.tags[PARAMS_TRIAL_TAG] == "3"
