"""The writes that make MLflow match Optuna (hpo/check/repair.py), called directly."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo.check import Check
from hpo.check.repair import STATUSES, Repairs, target
from hpo.config import Config
from hpo.names import (
    CV_ATTR,
    CV_STD,
    FAIL_REASON_ATTR,
    FAIL_REASON_TAG,
    METRIC_ATTR,
    ORPHAN_TAG,
    PARENT_ATTR,
    REPAIRED_BY_CHECK,
    REPAIRED_TAG,
    ROLE_STUDY,
    ROLE_TAG,
    RUN_ATTR,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
)
from hpo.storages import open_storage
from tests.hpo.check.conftest import client

X = {"x": FloatDistribution(0.0, 1.0)}


@pytest.fixture
def repairs(mlflow_uri: str) -> Repairs:
    """An in-memory study scored on roc_auc and an empty experiment of its own."""
    study = optuna.create_study(study_name=f"repair-{uuid.uuid4().hex[:8]}", direction="maximize")
    study.set_user_attr(METRIC_ATTR, "roc_auc")
    mlflow = MlflowClient(mlflow_uri)
    return Repairs(study, mlflow, mlflow.create_experiment(study.study_name))


def add(study: optuna.Study, state: TrialState, **kwargs: Any) -> FrozenTrial:
    """A finished trial of x, added to ``study`` as a worker would have left it."""
    params = kwargs.pop("params", {"x": 0.25})
    distributions = {k: FloatDistribution(0.0, 1.0) for k in params}
    study.add_trial(create_trial(state=state, params=params, distributions=distributions, **kwargs))
    return study.trials[-1]


def only_run(repairs: Repairs, trial: FrozenTrial) -> str:
    (run,) = repairs.client.search_runs(
        [repairs.experiment_id], f"tags.`{TRIAL_TAG}` = '{trial.number}'"
    )
    return run.info.run_id


def ms(when: datetime | None) -> int:
    assert when is not None
    return int(when.timestamp() * 1000)


def snapshot(mlflow: MlflowClient, run_id: str) -> tuple[Any, ...]:
    """Everything a repair could change on a run, metric histories included."""
    run = mlflow.get_run(run_id)
    history = {
        key: [(m.value, m.timestamp, m.step) for m in mlflow.get_metric_history(run_id, key)]
        for key in run.data.metrics
    }
    info = run.info
    return info.status, info.end_time, info.lifecycle_stage, run.data.tags, run.data.params, history


# --- target: the state a run should be in ---------------------------------------------------


@pytest.mark.parametrize("state", list(STATUSES))
@pytest.mark.parametrize("status", ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"])
def test_the_target_of_every_run_is_a_state_the_check_accepts(
    state: TrialState, status: str
) -> None:
    """Otherwise a repaired run would be found again on the next pass, forever."""
    status_to, tag_to = target(state, status)
    statuses, tags = STATUSES[state]
    assert status_to in statuses and tag_to in tags


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        (TrialState.FAIL, "RUNNING", ("KILLED", "KILLED")),  # its process died
        (TrialState.FAIL, "KILLED", ("KILLED", "KILLED")),
        (TrialState.FAIL, "FINISHED", ("FAILED", "FAIL")),
        (TrialState.COMPLETE, "RUNNING", ("FINISHED", "COMPLETE")),
        (TrialState.COMPLETE, "FAILED", ("FINISHED", "COMPLETE")),
        (TrialState.PRUNED, "KILLED", ("FINISHED", "PRUNED")),
    ],
)
def test_target(state: TrialState, status: str, expected: tuple[str, str]) -> None:
    assert target(state, status) == expected


# --- a missing child run, created from its trial ---------------------------------------------


def test_a_missing_run_of_a_complete_trial_is_created_from_it(repairs: Repairs) -> None:
    trial = add(
        repairs.study,
        TrialState.COMPLETE,
        params={"x": 0.25, "y": 0.5},
        value=0.81,
        user_attrs={CV_ATTR: {CV_STD: 0.04}},
    )
    repairs.create_child(trial, "p" * 32)

    run = repairs.client.get_run(only_run(repairs, trial))
    assert (run.info.status, run.info.run_name) == ("FINISHED", f"trial-{trial.number:04d}")
    assert (run.info.start_time, run.info.end_time) == (
        ms(trial.datetime_start),
        ms(trial.datetime_complete),
    )
    tags = run.data.tags
    assert tags[STATE_TAG] == "COMPLETE" and tags[REPAIRED_TAG] == REPAIRED_BY_CHECK
    assert tags[STUDY_TAG] == repairs.study.study_name and tags["mlflow.parentRunId"] == "p" * 32
    assert FAIL_REASON_TAG not in tags
    assert run.data.params == {"x": "0.25", "y": "0.5"}
    assert run.data.metrics == {"roc_auc": 0.81, "roc_auc_std": 0.04}, "the study's metric name"


def test_a_pruned_trial_without_a_value_gets_a_run_without_metrics(repairs: Repairs) -> None:
    trial = add(repairs.study, TrialState.PRUNED)
    repairs.create_child(trial, None)
    run = repairs.client.get_run(only_run(repairs, trial))
    assert (run.info.status, run.data.tags[STATE_TAG]) == ("FINISHED", "PRUNED")
    assert run.data.metrics == {} and run.data.params == {"x": "0.25"}


def test_a_study_without_a_metric_attr_logs_the_value_as_value(mlflow_uri: str) -> None:
    """A study created before the metric attr existed."""
    study = optuna.create_study()
    mlflow = MlflowClient(mlflow_uri)
    repairs = Repairs(study, mlflow, mlflow.create_experiment(f"repair-{uuid.uuid4().hex[:8]}"))
    trial = add(study, TrialState.COMPLETE, value=0.3)
    repairs.create_child(trial, None)
    assert mlflow.get_run(only_run(repairs, trial)).data.metrics == {"value": 0.3}


def test_a_multi_objective_trial_logs_its_first_value_under_the_metric(mlflow_uri: str) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(METRIC_ATTR, "f1")
    mlflow = MlflowClient(mlflow_uri)
    repairs = Repairs(study, mlflow, mlflow.create_experiment(f"repair-{uuid.uuid4().hex[:8]}"))
    trial = add(study, TrialState.COMPLETE, values=[0.7, 120.0])
    repairs.create_child(trial, None)
    assert mlflow.get_run(only_run(repairs, trial)).data.metrics == {"f1": 0.7}


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({FAIL_REASON_ATTR: "ValueError: x=0.9 is too large"}, "ValueError: x=0.9 is too large"),
        ({}, "the trial failed; closed by hpo check"),
    ],
)
def test_a_missing_run_of_a_failed_trial_is_failed_with_its_reason(
    repairs: Repairs, attrs: dict[str, str], reason: str
) -> None:
    trial = add(repairs.study, TrialState.FAIL, user_attrs=attrs)
    repairs.create_child(trial, None)
    run = repairs.client.get_run(only_run(repairs, trial))
    assert (run.info.status, run.data.tags[STATE_TAG]) == ("FAILED", "FAIL")
    assert run.data.tags[FAIL_REASON_TAG] == reason
    assert run.data.metrics == {}


def test_a_password_in_a_reason_is_masked_on_the_run(repairs: Repairs) -> None:
    why = "cannot reach postgresql://hpo:hunter2@db:5432/hpo"
    trial = add(repairs.study, TrialState.FAIL, user_attrs={FAIL_REASON_ATTR: why})
    repairs.create_child(trial, None)
    tag = repairs.client.get_run(only_run(repairs, trial)).data.tags[FAIL_REASON_TAG]
    assert tag == "cannot reach postgresql://hpo:***@db:5432/hpo"


# --- a run in the wrong state ----------------------------------------------------------------


def test_a_stale_running_run_is_closed_and_keeps_what_it_recorded(repairs: Repairs) -> None:
    """Params and metrics the run has stay as written; only what it lacks is added."""
    trial = add(repairs.study, TrialState.COMPLETE, params={"x": 0.25, "y": 0.5}, value=0.81)
    mlflow = repairs.client
    started = mlflow.create_run(repairs.experiment_id, tags={TRIAL_TAG: str(trial.number)})
    run_id = started.info.run_id
    mlflow.log_param(run_id, "x", "0.250")  # as a worker wrote it: re-logging "0.25" would raise
    mlflow.log_metric(run_id, "roc_auc", 0.8, step=3)

    repairs.set_state(trial, mlflow.get_run(run_id), "FINISHED", "COMPLETE")

    run = mlflow.get_run(run_id)
    assert (run.info.status, run.info.end_time) == ("FINISHED", ms(trial.datetime_complete))
    assert run.data.tags[STATE_TAG] == "COMPLETE"
    assert run.data.params == {"x": "0.250", "y": "0.5"}
    assert [m.value for m in mlflow.get_metric_history(run_id, "roc_auc")] == [0.8]


@pytest.mark.parametrize(
    ("state", "more", "closed"),
    [
        (TrialState.COMPLETE, {"value": 0.8, "user_attrs": {CV_ATTR: {CV_STD: 0.1}}}, "FINISHED"),
        (TrialState.FAIL, {"user_attrs": {FAIL_REASON_ATTR: "boom"}}, "KILLED"),
    ],
)
def test_setting_a_state_again_changes_nothing(
    repairs: Repairs, state: TrialState, more: dict[str, Any], closed: str
) -> None:
    trial = add(repairs.study, state, **more)
    mlflow = repairs.client
    run_id = mlflow.create_run(repairs.experiment_id, tags={TRIAL_TAG: "0"}).info.run_id
    status, tag = target(trial.state, "RUNNING")
    repairs.set_state(trial, mlflow.get_run(run_id), status, tag)
    once = snapshot(mlflow, run_id)
    repairs.set_state(trial, mlflow.get_run(run_id), status, tag)
    assert snapshot(mlflow, run_id) == once, "no metric logged twice, no tag or time changed"
    assert once[0] == closed


# --- the parent run and surplus runs ------------------------------------------------------


def test_a_new_parent_run_is_finished_and_named_by_the_study(repairs: Repairs) -> None:
    repairs.create_parent()
    parent_id = repairs.study.user_attrs[PARENT_ATTR]
    run = repairs.client.get_run(parent_id)
    assert (run.info.status, run.info.run_name) == ("FINISHED", repairs.study.study_name)
    assert run.data.tags[ROLE_TAG] == ROLE_STUDY
    assert run.data.tags[STUDY_TAG] == repairs.study.study_name
    assert run.data.tags[REPAIRED_TAG] == REPAIRED_BY_CHECK


def test_set_parent_moves_a_run_under_the_parent(repairs: Repairs) -> None:
    run_id = repairs.client.create_run(repairs.experiment_id).info.run_id
    repairs.set_parent(run_id, "q" * 32)
    assert repairs.client.get_run(run_id).data.tags["mlflow.parentRunId"] == "q" * 32


@pytest.mark.parametrize(("status", "closed"), [("RUNNING", "KILLED"), ("FAILED", "FAILED")])
def test_an_orphan_is_tagged_and_closed_only_if_running(
    repairs: Repairs, status: str, closed: str
) -> None:
    mlflow = repairs.client
    run_id = mlflow.create_run(repairs.experiment_id).info.run_id
    if status != "RUNNING":
        mlflow.set_terminated(run_id, status)
    repairs.tag_orphan(run_id, "no trial 42 in the study", status)
    run = mlflow.get_run(run_id)
    assert run.data.tags[ORPHAN_TAG] == "no trial 42 in the study"
    assert (run.info.status, run.info.lifecycle_stage) == (closed, "active"), "never deleted"


# --- a real study's experiment, repaired twice ------------------------------------------------


def test_a_second_repair_of_a_real_study_changes_nothing(cfg: Config) -> None:
    """A missing run, a run left RUNNING and a state that disagrees: one pass ends them; the
    next finds nothing, and setting the repaired runs' states again writes nothing new."""
    study = optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))
    mlflow = client(cfg)
    complete, fail = (
        next(t for t in study.trials if t.state == s)
        for s in (TrialState.COMPLETE, TrialState.FAIL)
    )
    mlflow.update_run(complete.user_attrs[RUN_ATTR], status="RUNNING")
    mlflow.update_run(fail.user_attrs[RUN_ATTR], status="FINISHED")
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": 0.3}, distributions=X))
    experiment = mlflow.get_experiment_by_name(cfg.study.name)
    assert experiment is not None
    checker = Check(study, mlflow, experiment.experiment_id)
    found = checker.mismatches()
    assert sorted(m.problem for m in found) == ["missing run", "stale RUNNING run", "state differs"]

    for mismatch in found:
        mismatch.repair()
    runs = checker._runs()
    repaired = [r for r in runs if r.data.tags.get(REPAIRED_TAG) == REPAIRED_BY_CHECK]
    assert len(repaired) == 3
    before = {r.info.run_id: snapshot(mlflow, r.info.run_id) for r in runs}

    assert checker.mismatches() == [], "the second check finds nothing to repair"
    trials = {str(t.number): t for t in study.trials}
    for run in repaired:
        trial = trials[run.data.tags[TRIAL_TAG]]
        fresh = mlflow.get_run(run.info.run_id)
        checker.repairs.set_state(trial, fresh, *target(trial.state, fresh.info.status))
    assert {r.info.run_id: snapshot(mlflow, r.info.run_id) for r in checker._runs()} == before
