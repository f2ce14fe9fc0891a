"""The study loop: ask, evaluate and tell until the budget is used, then finish.

The loop is ours, not Optuna's ``optimize``: ``claim`` counts the whole
study's trials under a lock (hpo/runner/budget.py), every database call
waits out an outage, and a worker's heartbeat and watchdog run beside it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from typing import TYPE_CHECKING

import optuna

from hpo import report
from hpo.config import Config
from hpo.errors import StudyStopped, disk_full
from hpo.names import FAIL_REASON_ATTR
from hpo.runner.budget import claim
from hpo.runner.finish import finish
from hpo.runner.liveness import heartbeat, watchdog
from hpo.runner.opening import open_study
from hpo.runner.plan import Plan, make_plan
from hpo.runner.progress import progress_bar, show
from hpo.runner.telling import fail_if_running
from hpo.runner.trial import evaluate
from hpo.secrets import mask
from hpo.storages import open_storage, retrying, worker_lock
from hpo.tracking.writer import ProcessWriter, early_writer

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker

log = logging.getLogger(__name__)


def run(
    cfg: Config, plan: Plan | None = None, writer_start: str = "spawn"
) -> report.Summary | None:
    """Run (or resume) the configured study to its budget and report on it.

    With ``trials_only=true`` (a worker started by ``workers=N``) it only runs
    trials: the parent process reports once, and owns the parent run's state.
    ``plan``: one already made from ``cfg`` (hpo/schedule reads the data first).
    ``writer_start``: how the MLflow writer process starts ("fork" from a forked worker).
    """
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    name = plan.spec.name if plan else cfg.study.name
    writer = early_writer(cfg.tracking, name, writer_start)  # its start overlaps the plan's
    try:
        plan = plan or make_plan(cfg)
        with worker_lock(cfg.storage, plan.spec.name):  # SQLite: this process alone, till the end
            return _run(cfg, plan, writer)
    finally:
        if writer:
            writer.close()  # the tracker's flush has closed it, unless the study never began


def _run(cfg: Config, plan: Plan, writer: ProcessWriter | None) -> report.Summary | None:
    storage = open_storage(cfg.storage)
    tracker = _tracker(cfg, plan, writer)
    study: optuna.Study | None = None
    try:
        study = retrying(
            lambda: open_study(plan, storage, tracker), plan.outage_limit, "opening the study"
        )
        failures = _trials(cfg, plan, study, storage, tracker)
        status = "FAILED" if failures >= plan.spec.max_failures else "FINISHED"
        summary = (
            retrying(
                lambda: finish(cfg, plan, study, tracker, status), plan.outage_limit, "finishing"
            )
            if not cfg.trials_only
            else None
        )
    except BaseException as err:
        if tracker:
            with contextlib.suppress(Exception):  # the store may be what failed
                tracker.flush(prompt=not isinstance(err, Exception))  # SIGTERM, Ctrl-C: promptly
                if not cfg.trials_only:
                    tracker.close_study("FAILED" if disk_full(err) else "KILLED")
        if isinstance(err, Exception) and disk_full(err):
            raise StudyStopped(_disk_full(err), _summary(plan, study, cfg)) from None
        raise
    finally:
        if tracker:
            with contextlib.suppress(Exception):
                tracker.flush()  # never leave the writer process (or its queued writes) behind
    if failures >= plan.spec.max_failures:
        raise StudyStopped(_failed_in_a_row(study, failures), summary)
    return summary


def _failed_in_a_row(study: optuna.Study, failures: int) -> str:
    """The one line for a study stopped by its objective failing (``study.max_failures``)."""
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    last = str(failed[-1].user_attrs.get(FAIL_REASON_ATTR, "unknown")) if failed else "unknown"
    last = last[:300].rstrip(".")
    return (
        f"{failures} trials in a row failed, the last with {last}: fix the objective, "
        "its space or data (each trial's reason is its fail_reason in Optuna and its MLflow "
        "tag hpo.fail_reason), then run the same command to resume"
    )


def _disk_full(err: BaseException) -> str:
    """The one line for a full disk: where it was found, and that nothing finished is lost."""
    found = mask(" ".join(str(err).split()))[:240]
    return (
        f"the disk is full ({found}): free some space (or move storage.url, tracking.uri or "
        "the working directory to a larger disk), then run the same command to resume; "
        "finished trials are kept"
    )


def _summary(plan: Plan, study: optuna.Study | None, cfg: Config) -> report.Summary | None:
    """What had finished, read back from Optuna's storage (None if it cannot be read)."""
    if study is None or cfg.trials_only:
        return None
    try:
        names = [o.name for o in plan.further_objectives]
        return report.summarize(study, plan.spec.metric, names, plan.constraints)
    except Exception:
        return None


def _trials(
    cfg: Config,
    plan: Plan,
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    tracker: Tracker | None,
) -> int:
    """Claim and evaluate trials until the budget or the timeout; the failures in a row."""
    failures = 0
    with progress_bar(cfg, plan, study) as bar, watchdog(study, tracker):
        deadline = time.monotonic() + plan.spec.timeout if plan.spec.timeout else math.inf
        while time.monotonic() < deadline:
            trial = retrying(
                lambda: claim(study, storage, plan.budget, tracker, deadline, plan.sampler_for),
                plan.outage_limit,
                "asking for a trial",
            )
            if trial is None:
                break
            try:
                with heartbeat(trial, storage):
                    record = evaluate(plan, study, trial, tracker)
            except BaseException:
                fail_if_running(study, trial)  # stopped before evaluate() could tell
                raise
            failures = failures + 1 if record.state == "FAIL" else 0
            with contextlib.suppress(Exception):  # progress only: never fail a study on it
                show(bar, study, record, plan)
            if failures >= plan.spec.max_failures:
                break  # run() says why, in one line
    return failures


def _tracker(cfg: Config, plan: Plan, writer: ProcessWriter | None) -> Tracker | None:
    """The MLflow tracker, imported only when tracking is on (a worker without it starts faster)."""
    if not cfg.tracking.enabled:
        return None
    from hpo.tracking.tracker import Tracker

    return Tracker(cfg.tracking, plan.spec.name, plan.sampler_kind, writer)
