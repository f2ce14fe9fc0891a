"""What MLflow recorded of one trial: its run, the study's parent run, and the config.

A replay trusts only what was written when the trial ran: the child run's
parameters (strings), its study metric, and the parent run's ``config.yaml``
(the composed config, resolved, passwords masked). Nothing is read from the
study files or conf/ of today's checkout, which may have changed since.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.cli import first_line
from hpo.config import Config, typed
from hpo.errors import UserError
from hpo.names import CONFIG_ARTIFACT, ROLE_STUDY, ROLE_TAG, STATE_TAG, STUDY_TAG, TRIAL_TAG
from hpo.secrets import mask
from hpo.space import Space
from hpo.storages import storage_file
from hpo.tracking.store import bound_calls, check_server, is_server

# MLflow draws a progress bar on stderr for every download: noise around a one-line answer.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class NotReplayable(Exception):
    """The run cannot be replayed as it stands (not a trial, no config, a failed trial):
    one line saying why, exit status 1. Not a UserError: the command was right."""


@dataclass(frozen=True)
class Recorded:
    """One trial as MLflow holds it, and the config its study ran with."""

    run_id: str
    trial: int
    state: str  # hpo.state: COMPLETE, PRUNED, FAIL, KILLED, RUNNING
    params: dict[str, str]
    metrics: dict[str, float]
    parent: Run
    config: Config

    @property
    def study(self) -> str:
        return self.config.study.name


def open_client(uri: str) -> MlflowClient:
    """A client on ``uri``, refusing a store that is not there: MLflow would create an
    empty SQLite file where a mistyped path points, or retry a dead server for minutes."""
    if is_server(uri):
        bound_calls(30.0)
        check_server(uri)
    else:
        path = storage_file(uri)
        if path is not None and not path.exists():
            raise UserError(f"no MLflow store at {path}: give tracking.uri=URI")
    return MlflowClient(uri)


def get_run(client: MlflowClient, run_id: str) -> Run:
    """The run ``run_id``; an unknown id or an unreachable store is a UserError."""
    uri = mask(str(client.tracking_uri))
    try:
        return client.get_run(run_id)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise UserError(
                f"no MLflow run '{run_id}' at {uri}: check the run id and tracking.uri="
            ) from None
        raise UserError(f"cannot read MLflow at {uri} ({first_line(err)})") from None


def read(client: MlflowClient, run_id: str) -> Recorded:
    """The trial run ``run_id``, its parent run and the parent's config."""
    run = get_run(client, run_id)
    tags = run.data.tags
    if TRIAL_TAG not in tags:
        raise NotReplayable(_not_a_trial(run))
    parent_id = tags.get(MLFLOW_PARENT_RUN_ID)
    if not parent_id:
        raise NotReplayable(
            f"run {run_id} has the {TRIAL_TAG} tag but no parent run: nothing records "
            "the config its study ran with"
        )
    try:
        parent = client.get_run(parent_id)
    except MlflowException:
        raise NotReplayable(
            f"run {run_id}'s parent run {parent_id} is gone: nothing records the config "
            "its study ran with"
        ) from None
    return Recorded(
        run_id,
        int(tags[TRIAL_TAG]),
        tags.get(STATE_TAG, "unknown"),
        dict(run.data.params),
        dict(run.data.metrics),
        parent,
        _config(client, parent, tags.get(STUDY_TAG, "?")),
    )


def _not_a_trial(run: Run) -> str:
    tags = run.data.tags
    if tags.get(ROLE_TAG) == ROLE_STUDY:
        return (
            f"run {run.info.run_id} is not a trial run: it is the parent run of study "
            f"'{tags.get(STUDY_TAG, '?')}'; give one of its child runs (trial-NNNN)"
        )
    return f"run {run.info.run_id} is not a trial run (it has no {TRIAL_TAG} tag)"


def _config(client: MlflowClient, parent: Run, study: str) -> Config:
    """The parent run's config.yaml, typed against today's schema (a key it no longer
    knows, or a value it refuses, is said in one line)."""
    parent_id = parent.info.run_id
    names = {a.path for a in client.list_artifacts(parent_id)}
    if CONFIG_ARTIFACT not in names:
        raise NotReplayable(
            f"the parent run {parent_id} of study '{study}' has no {CONFIG_ARTIFACT} (it "
            "is written when the study finishes: run the study's command once more to "
            "finish it)"
        )
    with tempfile.TemporaryDirectory() as folder:
        text = Path(client.download_artifacts(parent_id, CONFIG_ARTIFACT, folder)).read_text()
    try:
        loaded = OmegaConf.create(text)
        return typed(OmegaConf.merge(OmegaConf.structured(Config), loaded))  # type: ignore[arg-type]
    except (OmegaConfBaseException, UserError, ValueError) as err:
        raise NotReplayable(
            f"the {CONFIG_ARTIFACT} of study '{study}' does not fit today's config schema "
            f"({first_line(err)})"
        ) from None


def fold_series(client: MlflowClient, run_id: str, name: str) -> list[float]:
    """The step series ``name`` (a metric's value per fold), in step order."""
    try:
        history = client.get_metric_history(run_id, name)
    except MlflowException:
        return []
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def typed_params(space: Space, strings: Mapping[str, str]) -> dict[str, Any]:
    """The run's parameters (MLflow keeps strings) as the space's types, in the space's
    order, active parameters only: the dict ``Space.suggest`` gave the trial.

    A parameter the space lacks, or an active one the run lacks, means the run and
    the config disagree; that is said rather than guessed around.
    """
    values: dict[str, Any] = {}
    for param in space.params:
        if not param.active(values):
            continue
        if param.name not in strings:
            raise NotReplayable(f"the run has no parameter '{param.name}', which its space has")
        values[param.name] = _from_string(param.name, param.distribution, strings[param.name])
    extra = sorted(set(strings) - set(values))
    if extra:
        raise NotReplayable(
            f"the run has parameter(s) {', '.join(extra)} that its study's space does not "
            "sample with these values"
        )
    return values


def _from_string(name: str, distribution: Any, text: str) -> Any:
    """One parameter back from ``str(value)``: Python's float repr round-trips exactly."""
    try:
        if isinstance(distribution, IntDistribution):
            return int(text)
        if isinstance(distribution, FloatDistribution):
            return float(text)
    except ValueError:
        raise NotReplayable(f"parameter '{name}' = {text!r} is not a number") from None
    assert isinstance(distribution, CategoricalDistribution)
    for choice in distribution.choices:
        if str(choice) == text:
            return choice
    raise NotReplayable(f"parameter '{name}' = {text!r} is none of its choices")
