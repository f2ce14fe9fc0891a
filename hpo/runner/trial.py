"""One trial: suggest, cross-validate, tell Optuna (telling.py), build what the tracker logs.

Every way a trial can end (complete, pruned after some folds, pruned, failed,
interrupted by Ctrl-C or SIGTERM, the database gone) ends it once in Optuna
and once in MLflow, so that neither store is left with a RUNNING trial.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from hpo import constraints, pareto
from hpo.cv import CVResult, FoldsPruned, cross_validate
from hpo.names import (
    CONSTRAINT_METRIC_PREFIX,
    FAIL_REASON_ATTR,
    FAIL_REASON_TAG,
    FEASIBLE_TAG,
    PRUNE_REASON_TAG,
    RUN_ATTR,
)
from hpo.pruning import QueuedStepReporter
from hpo.runner.plan import Plan
from hpo.runner.telling import tell
from hpo.secrets import mask
from hpo.storages import DatabaseOutage, retrying
from hpo.tracking.records import TrialRecord
from hpo.tracking.spool import is_placeholder

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker

log = logging.getLogger(__name__)


def evaluate(
    plan: Plan, study: optuna.Study, trial: optuna.Trial, tracker: Tracker | None
) -> TrialRecord:
    """Run one trial and tell Optuna its outcome; returns what the tracker logs."""
    run_id: str | None = None
    interrupted: BaseException | None = None
    try:  # Ctrl-C or SIGTERM while starting: the trial still ends as FAIL, its run KILLED
        run_id = tracker.start_trial(trial.number) if tracker else None
        _own(plan, trial, run_id)
    except (KeyboardInterrupt, SystemExit) as err:
        interrupted = err
    params: dict[str, Any] = {}
    result: CVResult | None = None
    values: list[float] = []
    judged: dict[str, float] | None = None  # each constraint's value (hpo/constraints.py)
    # pruner=none: no reports at all (each is a storage write, for nothing)
    reports = (
        None
        if isinstance(plan.pruner, optuna.pruners.NopPruner)
        else QueuedStepReporter(study, trial)
    )
    try:
        if interrupted is not None:
            raise interrupted
        # The sampler and the pruner read the study: a dropped connection there is an
        # outage to wait out like any other, not the trial's failure.
        params = retrying(lambda: plan.space.suggest(trial), plan.outage_limit, "sampling")
        should_prune = _waiting_out(reports.should_prune, plan) if reports else None
        result = cross_validate(plan.objective, params, plan.cv_setup, should_prune)
        if not math.isfinite(result.value):
            raise ValueError(f"objective value is {result.value}")
        values = pareto.values(result.value, result.fit_facts, plan.further_objectives)
        judged = constraints.values(plan.constraints, result.fit_facts)
        record = _record(trial.number, "COMPLETE", params, plan, result, judged)
    except FoldsPruned as pruned:
        result = pruned.result
        judged = constraints.values(plan.constraints, result.fit_facts, partial=True)
        record = _record(trial.number, "PRUNED", params, plan, result, judged)
        record.tags[PRUNE_REASON_TAG] = str(pruned)  # e.g. "pruned at epoch 7 of fold 2"
    except optuna.TrialPruned:
        record = TrialRecord(trial.number, "PRUNED", params)
    except DatabaseOutage:  # past storage.outage_limit: the worker stops, its run KILLED
        if tracker and run_id:
            tracker.kill_trial(run_id, "the database was unreachable during the trial", params)
        raise
    except (Exception, KeyboardInterrupt, SystemExit) as err:
        reason = mask(f"{type(err).__name__}: {err}".splitlines()[0])[:500]
        record = TrialRecord(trial.number, "FAIL", params, tags={FAIL_REASON_TAG: reason})
        if isinstance(err, Exception):
            log.warning("trial %d failed: %s", trial.number, reason)
        else:
            interrupted = err
    if reports is not None:
        reports.flush()  # a pruned trial's value is its last stored step
    told = _store(plan, study, trial, record, result, values, tracker, run_id, judged)
    if not told and not retrying(
        lambda: _told_by_us(study, trial, record, values), plan.outage_limit, "storing a trial"
    ):
        _disowned(study, trial, record)  # another worker failed it as stale: theirs now
        run_id = None
    if interrupted is not None:  # Ctrl-C or SIGTERM: the run is KILLED, then we stop
        if tracker and run_id:
            tracker.kill_trial(run_id, record.tags[FAIL_REASON_TAG], record.params)
        raise interrupted
    if tracker and run_id:
        tracker.end_trial(run_id, record)
    return record


def _told_by_us(
    study: optuna.Study, trial: optuna.Trial, record: TrialRecord, values: list[float]
) -> bool:
    """Whether the trial's stored end is this worker's own (a tell whose reply was lost to
    a dropped connection, then retried), not another worker's reaping of it."""
    stored = study._storage.get_trial(trial._trial_id)
    if stored.state.name != record.state:
        return False
    if record.state == "COMPLETE":
        return list(stored.values or []) == values
    if record.state == "FAIL":
        return stored.user_attrs.get(FAIL_REASON_ATTR) == record.tags.get(FAIL_REASON_TAG)
    return True  # PRUNED: reaping only ever fails a trial


def _disowned(study: optuna.Study, trial: optuna.Trial, record: TrialRecord) -> None:
    """Say that this worker's result for ``trial`` is dropped, and take Optuna's state.

    A worker stalled past the heartbeat grace (SIGSTOP, a swapping machine)
    finds on waking that another worker failed its trial, retried its
    parameters and closed its MLflow run as KILLED. Writing the run now would
    make MLflow disagree with Optuna, so the stored state wins.
    """
    stored = study._storage.get_trial(trial._trial_id)
    reason = str(stored.user_attrs.get(FAIL_REASON_ATTR) or stored.state.name)
    log.warning(
        "trial %d had been ended by another worker meanwhile (%s): this worker's result is dropped",
        trial.number,
        reason,
    )
    record.state = stored.state.name
    record.tags[FAIL_REASON_TAG] = reason


def _waiting_out(
    should_prune: Callable[[int, float], bool], plan: Plan
) -> Callable[[int, float], bool]:
    """``should_prune``, retried through an outage (Optuna's pruners read the study)."""

    def judged(step: int, value: float) -> bool:
        return retrying(lambda: should_prune(step, value), plan.outage_limit, "pruning")

    return judged


def _own(plan: Plan, trial: optuna.Trial, run_id: str | None) -> None:
    """Mark the trial with its MLflow run, waiting out an outage (its worker, host:pid, was
    marked when it was claimed: hpo/runner/budget.py)."""
    if run_id is None or is_placeholder(run_id):
        return  # no tracking, or tracking is away: the run is created later, its id unknown
    retrying(lambda: trial.set_user_attr(RUN_ATTR, run_id), plan.outage_limit, "starting a trial")


def _store(
    plan: Plan,
    study: optuna.Study,
    trial: optuna.Trial,
    record: TrialRecord,
    result: CVResult | None,
    values: list[float],
    tracker: Tracker | None,
    run_id: str | None,
    judged: Mapping[str, float] | None = None,
) -> bool:
    """Tell the trial, waiting out an outage; past the limit its run is KILLED, then we stop.

    False when the trial had ended already (failed by another worker): not ours to log.
    """
    try:
        oof = kept_oof(plan, result) if record.state == "COMPLETE" else None
        return retrying(
            lambda: tell(study, trial, record, result, values, oof, judged),
            plan.outage_limit,
            "storing a trial",
        )
    except DatabaseOutage:
        if tracker and run_id:
            tracker.kill_trial(
                run_id, "the database was unreachable when the trial ended", record.params
            )
        raise


OOF_LIMIT = 20_000  # out-of-fold scores kept per trial at most (rows x classes), for BBC-CV


def kept_oof(plan: Plan, result: CVResult | None) -> list[Any] | None:
    """The trial's out-of-fold scores as the study keeps them for BBC-CV (4 decimals:
    enough to rank and score, a third of the size), or None: BBC-CV off, a study of
    several objectives, or more than OOF_LIMIT numbers."""
    if not plan.bbc_boot or plan.further_objectives or result is None:
        return None
    if result.oof_scores is None or result.oof_scores.size > OOF_LIMIT:
        return None
    return list(np.round(np.asarray(result.oof_scores, dtype=float), 4).tolist())


def _record(
    number: int,
    state: str,
    params: dict[str, Any],
    plan: Plan,
    result: CVResult,
    judged: Mapping[str, float] | None = None,
) -> TrialRecord:
    """What the trial's run logs. A pruned trial's mean is over the folds it ran, so
    its metrics say so (``f1_partial``, ``f1_partial_fold``, ``oof_partial_f1``): the
    study metric on a run is always the full cross-validated estimate, and sorting
    runs by it in the MLflow UI never ranks a 2-fold mean among the 5-fold ones."""
    partial = "_partial" if state == "PRUNED" else ""
    name = plan.spec.metric + partial
    metrics = {
        name: result.value,
        **({f"{name}_std": result.std} if len(result.fold_values) > 1 else {}),  # a spread
        "fit_seconds": result.fit_seconds,
        "n_folds_run": len(result.fold_values),
    }
    metrics |= {k: v for k, v in result.fit_facts.items()}
    tags: dict[str, str] = {}
    if judged is not None:  # study.constraints: met or not, and by how much (<= 0 met)
        tags[FEASIBLE_TAG] = "true" if constraints.met(judged) else "false"
        metrics |= {CONSTRAINT_METRIC_PREFIX + k: v for k, v in judged.items()}
    series = {f"{name}_fold": result.fold_values}
    oof = None
    if result.oof_index is not None:
        oof = (f"oof{partial}_", plan.data.task, plan.data.y[result.oof_index], result.oof_scores)
    return TrialRecord(
        number, state, params, metrics, series, curves=result.curves, tags=tags, oof=oof
    )
