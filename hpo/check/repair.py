"""Repairs that make MLflow match Optuna, never deleting: what was recorded stays.

Stale runs are closed as KILLED, states and tags set, missing runs created
(or restored) from the trial, surplus runs tagged ``hpo.orphan``.
"""

from __future__ import annotations

from typing import Any

import optuna
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from hpo.constraints import is_feasible
from hpo.names import (
    CV_ATTR,
    CV_STD,
    FAIL_REASON_ATTR,
    FAIL_REASON_TAG,
    FEASIBLE_TAG,
    METRIC_ATTR,
    ORPHAN_TAG,
    PARENT_ATTR,
    REPAIRED_BY_CHECK,
    REPAIRED_TAG,
    ROLE_STUDY,
    ROLE_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
)
from hpo.secrets import mask

STATUSES = {  # Optuna state -> the MLflow statuses and hpo.state tags that agree with it
    TrialState.COMPLETE: ({"FINISHED"}, {"COMPLETE"}),
    TrialState.PRUNED: ({"FINISHED"}, {"PRUNED"}),
    TrialState.FAIL: ({"FAILED", "KILLED"}, {"FAIL", "KILLED"}),
}


class Repairs:
    """The writes that end each kind of mismatch, on one study's experiment."""

    def __init__(self, study: optuna.Study, client: MlflowClient, experiment_id: str) -> None:
        self.study = study
        self.client = client
        self.experiment_id = experiment_id

    def create_parent(self) -> None:
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study.study_name,
            tags={
                STUDY_TAG: self.study.study_name,
                ROLE_TAG: ROLE_STUDY,
                REPAIRED_TAG: REPAIRED_BY_CHECK,
            },
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        self.study.set_user_attr(PARENT_ATTR, run.info.run_id)

    def set_parent(self, run_id: str, parent_id: str) -> None:
        self.client.set_tag(run_id, "mlflow.parentRunId", parent_id)

    def set_state(self, trial: FrozenTrial, run: Run, status: str, tag: str) -> None:
        """The trial's state, reason and (when missing) its params and value on its run."""
        tags = {STATE_TAG: tag, REPAIRED_TAG: REPAIRED_BY_CHECK}
        if trial.constraints:  # study.constraints: met or not, as the trial's run said
            tags[FEASIBLE_TAG] = "true" if is_feasible(trial) else "false"
        if trial.state == TrialState.FAIL:
            tags[FAIL_REASON_TAG] = trial.user_attrs.get(
                FAIL_REASON_ATTR, "the trial failed; closed by hpo check"
            )
        self.log(run.info.run_id, trial, tags, have=run)
        self.client.set_terminated(run.info.run_id, status, end_time=_ms(trial.datetime_complete))

    def create_child(self, trial: FrozenTrial, parent_id: str | None) -> None:
        status, tag = target(trial.state, "FINISHED")
        run = self.client.create_run(
            self.experiment_id,
            start_time=_ms(trial.datetime_start),
            run_name=f"trial-{trial.number:04d}",
            tags={
                "mlflow.parentRunId": parent_id or "",
                STUDY_TAG: self.study.study_name,
                TRIAL_TAG: str(trial.number),
            },
        )
        self.set_state(trial, run, status, tag)

    def log(self, run_id: str, trial: FrozenTrial, tags: dict[str, str], have: Run) -> None:
        """Tags, plus the trial's params and value where the run lacks them."""
        params = {k: str(v) for k, v in trial.params.items() if k not in have.data.params}
        metric = self.study.user_attrs.get(METRIC_ATTR, "value")
        metrics = {}
        value = trial.values[0] if trial.values else None  # the metric (first of several)
        if value is not None and metric not in have.data.metrics:
            metrics[metric] = value
            std = trial.user_attrs.get(CV_ATTR, {}).get(CV_STD)
            if std is not None:
                metrics[f"{metric}_std"] = std
        now = _ms(trial.datetime_complete) or 0
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, mask(str(v))) for k, v in tags.items()],
        )

    def tag_orphan(self, run_id: str, why: str, status: str) -> None:
        self.client.set_tag(run_id, ORPHAN_TAG, why)
        if status == "RUNNING":
            self.client.set_terminated(run_id, "KILLED")


def target(state: TrialState, status: str) -> tuple[str, str]:
    """(MLflow status, hpo.state tag) a run of a trial in ``state`` should have."""
    if state == TrialState.FAIL:
        if status in ("RUNNING", "KILLED"):  # its process died: the writer's own verdict
            return "KILLED", "KILLED"
        return "FAILED", "FAIL"
    return "FINISHED", state.name


def _ms(when: Any) -> int | None:
    return int(when.timestamp() * 1000) if when is not None else None
