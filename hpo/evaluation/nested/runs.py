"""The nested estimate on MLflow: a run ``nested`` in the study's experiment, one child per fold.

The run ``nested`` (hpo.role ``nested``) holds ``nested_<metric>`` and its std
over outer folds, and ``inner_best_<metric>``, the inner searches' own mean
best CV value, beside it; each child ``outer-<k>`` holds its outer score, the
inner study's best CV value, and the winner's parameters as params. Inner
trials are not logged one by one: they are in the Optuna storage.

A rerun with the same outer folds and trials reuses the run and its children
(as the study keeps one parent run), so the experiment holds one nested run
per setting; another number of trials is another procedure, with a run of its
own. A child whose inner winner changed since it was logged is replaced (the
old one deleted, restorable from MLflow's trash), as params cannot change.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from mlflow.entities import Metric, Param, Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from hpo.config import Config
from hpo.evaluation.nested.result import NestedResult, OuterFold
from hpo.names import (
    BEST_TRIAL_TAG,
    DIRECTION_TAG,
    INNER_STUDY_TAG,
    METRIC_TAG,
    OUTER_FOLD_TAG,
    ROLE_NESTED,
    ROLE_OUTER,
    ROLE_TAG,
    STUDY_TAG,
)
from hpo.runner import Plan
from hpo.secrets import mask

log = logging.getLogger(__name__)
RUN_NAME = "nested"


def log_nested(cfg: Config, plan: Plan, result: NestedResult) -> str:
    """Log ``result``; where to see it, or "" when MLflow could not take it (said in one
    warning: the estimate is in the summary either way)."""
    from hpo.tracking.tracker import Tracker

    try:  # the tracker opens (or creates) the experiment as the study's runs do
        tracker = Tracker(replace(cfg.tracking, writer="inline"), plan.spec.name, plan.sampler_kind)
        client, experiment = tracker.client, tracker.experiment_id
        params = {"outer": str(len(result.folds)), "trials": str(result.trials)}
        if plan.cv is not None:
            params["cv"] = plan.cv.scheme
        run_id = _nested_run(client, experiment, plan, params)
        for fold in result.folds:
            _outer_run(client, experiment, run_id, plan, fold)
        name = plan.spec.metric
        _log(
            client,
            run_id,
            {
                f"nested_{name}": result.value,
                f"nested_{name}_std": result.std,
                f"inner_best_{name}": result.inner_best,
            },
            {},
        )
        client.set_terminated(run_id, "FINISHED")
        look = tracker.ui_command(plan.spec.metric, plan.direction)
        return f"{look}  (MLflow's UI on experiment '{plan.spec.name}')"
    except Exception as err:
        log.warning(
            "the nested CV estimate is not on MLflow (%s): it is in the summary; run the "
            "same command to log it (the inner studies are complete)",
            mask(str(err).splitlines()[0] if str(err) else type(err).__name__),
        )
        return ""


def _nested_run(client: MlflowClient, experiment: str, plan: Plan, params: dict[str, str]) -> str:
    """The nested run of these settings (outer folds, trials, CV): the one there is, or new."""
    role = f"tags.`{ROLE_TAG}` = '{ROLE_NESTED}'"
    same = " and ".join(f"params.`{k}` = '{v}'" for k, v in params.items())
    found = client.search_runs([experiment], f"{role} and {same}", max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return str(found[0].info.run_id)
    tags = {
        STUDY_TAG: plan.spec.name,
        ROLE_TAG: ROLE_NESTED,
        METRIC_TAG: plan.spec.metric,
        DIRECTION_TAG: plan.direction,
    }
    run = client.create_run(experiment, run_name=RUN_NAME, tags=tags)
    _log(client, run.info.run_id, {}, params)
    return str(run.info.run_id)


def _outer_run(
    client: MlflowClient, experiment: str, parent: str, plan: Plan, fold: OuterFold
) -> None:
    """Outer fold ``fold.k``'s child run: its outer score, inner best and winner's params."""
    run = _child(client, experiment, parent, fold)
    if run is None:
        tags = {
            MLFLOW_PARENT_RUN_ID: parent,
            STUDY_TAG: plan.spec.name,
            ROLE_TAG: ROLE_OUTER,
            OUTER_FOLD_TAG: str(fold.k),
            INNER_STUDY_TAG: fold.study,
            BEST_TRIAL_TAG: str(fold.best_trial),
        }
        run = client.create_run(experiment, run_name=f"outer-{fold.k}", tags=tags)
    name = plan.spec.metric
    metrics = {
        f"outer_{name}": fold.value,
        f"inner_best_{name}": fold.inner_best,
        "train_rows": float(fold.train_rows),
        "test_rows": float(fold.test_rows),
    }
    _log(client, run.info.run_id, metrics, {k: str(v) for k, v in fold.params.items()})
    client.set_terminated(run.info.run_id, "FINISHED")


def _child(client: MlflowClient, experiment: str, parent: str, fold: OuterFold) -> Run | None:
    """The child run fold ``k`` already has under ``parent``, if its winner is the same; one
    with another winner is deleted (its params would have to change)."""
    where = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}' and tags.`{OUTER_FOLD_TAG}` = '{fold.k}'"
    kept = None
    for run in client.search_runs([experiment], where, max_results=100):
        if kept is None and run.data.tags.get(BEST_TRIAL_TAG) == str(fold.best_trial):
            kept = run
        else:
            client.delete_run(run.info.run_id)
    return kept


def _log(
    client: MlflowClient, run_id: str, metrics: dict[str, float], params: dict[str, str]
) -> None:
    """One batch; a param already logged with the same value is taken again by MLflow."""
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        params=[Param(k, mask(v)) for k, v in params.items()],
    )
