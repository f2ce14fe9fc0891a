"""The study runner: resolve the config, then ask, evaluate and tell until the budget is used.

The loop is ours, not Optuna's ``optimize``: the budget counts the study's
finished and running trials (not this process's), checked under a short
study-wide lock, so a rerun resumes and several processes never overshoot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat, get_heartbeat_thread, is_heartbeat_enabled
from optuna.trial import TrialState
from tqdm import tqdm

from hpo import report
from hpo.config import StudyConfig, effective_cv
from hpo.cv import CVResult, Folds, FoldsPruned, cross_validate, make_folds
from hpo.data import Dataset, load_data
from hpo.errors import UserError
from hpo.metrics import Metric, get_metric
from hpo.samplers import build_pruner, build_sampler, sampler_kind
from hpo.space import Space, parse_space
from hpo.storage import StaleTrials, display_url, mask, open_storage, study_lock
from hpo.tracking import PARENT_ATTR, RUN_ATTR, Tracker, TrialRecord, log_model
from objectives.base import Objective

log = logging.getLogger(__name__)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
MAX_RETRY = 3  # a dead worker's trial runs again at most this often, unless storage.max_retry
WAIT_SECONDS = 1.0  # how often a worker waiting on others' running trials looks again
CV_ATTR = "cv"  # {"std", "fold_values", "info"} of a trial's cross-validation


@dataclass
class Plan:
    """Everything resolved and checked before the first trial."""

    spec: StudyConfig
    objective: Objective
    data: Dataset
    folds: Folds
    metric: Metric
    direction: Literal["maximize", "minimize"]
    space: Space
    sampler: optuna.samplers.BaseSampler
    sampler_kind: str
    pruner: optuna.pruners.BasePruner
    budget: int | None
    pooled: bool
    seed: int
    n_jobs: int


def make_plan(cfg: DictConfig) -> Plan:
    spec: StudyConfig = OmegaConf.to_object(cfg.study)  # type: ignore[assignment]
    objective = _objective(cfg.study.objective)
    metric = get_metric(spec.metric, objective.task)  # type: ignore[arg-type]
    direction = spec.direction or metric.direction
    if direction not in ("maximize", "minimize"):
        raise UserError(f"study.direction is '{direction}': use maximize or minimize")
    direction = cast(Literal["maximize", "minimize"], direction)
    space = parse_space(spec.space)
    kind = sampler_kind(cfg.sampler)
    sampler = build_sampler(cfg.sampler, space)
    budget = spec.n_trials
    if kind == "grid":  # past the grid size the grid sampler would only repeat points
        budget = min(budget or math.inf, space.grid_size())  # type: ignore[assignment]
    if budget is not None and budget < 1:
        raise UserError(
            f"study.n_trials is {budget}: use a positive number, or null with a timeout"
        )
    if budget is None and spec.timeout is None:
        raise UserError(
            "the study has neither n_trials nor timeout: set study.n_trials=N "
            "or study.timeout=SECONDS"
        )
    cv = effective_cv(cfg)
    data = load_data(spec.data, objective.task, int(cfg.seed))  # type: ignore[arg-type]
    return Plan(
        spec,
        objective,
        data,
        make_folds(cv, data),
        metric,
        direction,
        space,
        sampler,
        kind,
        build_pruner(cfg.pruner),
        budget,
        cv.scheme == "loo",
        int(cfg.seed),
        int(cfg.n_jobs) or os.cpu_count() or 1,
    )


def _objective(node: Any) -> Objective:
    try:
        objective = instantiate(node)
    except Exception as err:
        cause = err.__cause__ or err
        raise UserError(
            f"cannot build study.objective: {str(cause).splitlines()[0]}; fix study.objective"
        ) from None
    if not isinstance(objective, Objective):
        raise UserError(f"study.objective._target_ {node.get('_target_')} is not an Objective")
    return objective


def open_study(
    cfg: DictConfig, plan: Plan, storage: optuna.storages.BaseStorage, tracker: Tracker | None
) -> optuna.Study:
    """Create or resume the study (and its MLflow parent run) under the study lock."""
    name = plan.spec.name
    with study_lock(storage, name):
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=plan.direction,
            sampler=plan.sampler,
            pruner=plan.pruner,
            load_if_exists=True,
        )
        _check_compatible(study, plan)
        recover(study, tracker)
        if tracker is not None:
            existing = study.user_attrs.get(PARENT_ATTR)
            parent = tracker.open_parent(
                existing, {"hpo.metric": plan.spec.metric, "hpo.direction": plan.direction}
            )
            if parent != existing:
                study.set_user_attr(PARENT_ATTR, parent)
    return study


def _check_compatible(study: optuna.Study, plan: Plan) -> None:
    """Refuse to join a study created for another direction, metric or space."""
    name = plan.spec.name
    if study.direction.name.lower() != plan.direction:
        raise UserError(
            f"study '{name}' exists with direction {study.direction.name.lower()}, "
            f"not {plan.direction}: keep its direction or set study.name=NEW_NAME"
        )
    stored = {"metric": plan.spec.metric, "space": plan.space.fingerprint()}
    for key, value in stored.items():
        old = study.user_attrs.get(key)
        if old is None:
            study.set_user_attr(key, value)
        elif old != value:
            what = _space_diff(old, value) if key == "space" else f"metric {old}"
            raise UserError(
                f"study '{name}' exists with another {key} ({what}): resume it "
                "unchanged or set study.name=NEW_NAME"
            )


def _space_diff(old: str, new: str) -> str:
    before, after = json.loads(old), json.loads(new)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return "parameter " + ", ".join(changed) + " differs"


def _reap_orphans(study: optuna.Study, tracker: Tracker | None) -> None:
    """Fail RUNNING trials whose process on this host is gone (killed without a heartbeat)."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        if not worker.startswith(host + ":") or _alive(int(worker.rsplit(":", 1)[1])):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=_max_retry(study))  # same params
        retry(study, study._storage.get_trial(trial._trial_id))
        log.warning(
            "trial %d was left running by dead process %s: marked FAIL", trial.number, worker
        )
        if tracker is not None and RUN_ATTR in trial.user_attrs:
            tracker.kill_run(trial.user_attrs[RUN_ATTR], f"process {worker} died")


def heartbeat(trial: optuna.Trial, storage: optuna.storages.BaseStorage) -> Any:
    """Optuna's heartbeat thread for one trial (a no-op without heartbeats).

    Optuna starts it only inside ``Study.optimize``; hpo runs its own loop.
    """
    return get_heartbeat_thread(trial._trial_id, storage)


def _max_retry(study: optuna.Study) -> int:
    stale = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    return stale.max_retry if isinstance(stale, StaleTrials) else MAX_RETRY


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    budget: int | None,
    tracker: Tracker | None,
    deadline: float,
) -> optuna.Trial | None:
    """A new trial while the study's finished + running trials are below the budget.

    When running trials hold the rest of the budget, wait: if one of their
    workers dies, its trial fails (heartbeat) and is retried here. None once
    the study's finished trials reach the budget (or the time is up).
    """
    while True:
        with study_lock(storage, study.study_name):
            counted = study.get_trials(deepcopy=False, states=COUNTED)
            if budget is None or len(counted) < budget:
                return study.ask()
            if sum(t.state != TrialState.RUNNING for t in counted) >= budget:
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(WAIT_SECONDS)
        recover(study, tracker)


def recover(study: optuna.Study, tracker: Tracker | None) -> None:
    """Fail the trials of dead workers (by heartbeat, or by pid on this host), close their runs."""
    _reap_orphans(study, tracker)
    storage = study._storage  # Optuna wraps an RDBStorage in a cache that keeps its heartbeat API
    if not (isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)):
        return
    optuna.storages.fail_stale_trials(study)
    stale = storage.get_heartbeat_stale_trial_callback()
    for trial in stale.drain() if isinstance(stale, StaleTrials) else []:
        log.warning(
            "trial %d lost its worker (no heartbeat): marked FAIL and retried", trial.number
        )
        if tracker is not None and RUN_ATTR in trial.user_attrs:
            tracker.kill_run(trial.user_attrs[RUN_ATTR], "its worker stopped sending heartbeats")


@contextlib.contextmanager
def watchdog(study: optuna.Study, tracker: Tracker | None) -> Iterator[None]:
    """While this worker runs trials, look for dead workers' trials every heartbeat interval."""
    storage = study._storage
    enabled = isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)
    interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
    if not (enabled and interval):
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval):
            try:
                recover(study, tracker)
            except Exception as err:  # an outage: the main loop decides what to do
                log.warning("could not check for dead workers: %s", mask(str(err))[:200])

    thread = threading.Thread(target=watch, name="hpo-watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def evaluate(
    plan: Plan, study: optuna.Study, trial: optuna.Trial, tracker: Tracker | None
) -> TrialRecord:
    """Run one trial and tell Optuna its outcome; returns what the tracker logs."""
    run_id = tracker.start_trial(trial.number) if tracker else None
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    if run_id:
        trial.set_user_attr(RUN_ATTR, run_id)
    params: dict[str, Any] = {}
    interrupted: BaseException | None = None
    result: CVResult | None = None
    try:
        params = plan.space.suggest(trial)
        result = cross_validate(
            plan.objective,
            params,
            plan.data,
            plan.folds,
            plan.metric,
            plan.seed,
            _pruning_check(trial),
            plan.pooled,
            plan.n_jobs,
        )
        if not math.isfinite(result.value):
            raise ValueError(f"objective value is {result.value}")
        record = _record(trial.number, "COMPLETE", params, plan, result)
    except FoldsPruned as pruned:
        result = pruned.result
        record = _record(trial.number, "PRUNED", params, plan, result)
    except optuna.TrialPruned:
        record = TrialRecord(trial.number, "PRUNED", params)
    except (Exception, KeyboardInterrupt, SystemExit) as err:
        reason = mask(f"{type(err).__name__}: {err}".splitlines()[0])[:500]
        record = TrialRecord(trial.number, "FAIL", params, tags={"hpo.fail_reason": reason})
        if isinstance(err, Exception):
            log.warning("trial %d failed: %s", trial.number, reason)
        else:
            interrupted = err
    _tell(study, trial, record, result)
    if interrupted is not None:  # Ctrl-C or SIGTERM: the run is KILLED, then we stop
        if tracker and run_id:
            tracker.kill_trial(run_id, record.tags["hpo.fail_reason"])
        raise interrupted
    if tracker and run_id:
        tracker.end_trial(run_id, record)
    return record


def _tell(
    study: optuna.Study, trial: optuna.Trial, record: TrialRecord, result: CVResult | None
) -> None:
    """Store the trial's CV facts in one user attr, then its final state."""
    if result is not None:
        cv = {"std": result.std, "fold_values": result.fold_values, "info": result.info}
        trial.set_user_attr(CV_ATTR, cv)
    if record.state == "FAIL":
        trial.set_user_attr("fail_reason", record.tags["hpo.fail_reason"])
        study.tell(trial, state=TrialState.FAIL)
    elif record.state == "PRUNED":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        assert result is not None
        study.tell(trial, result.value)


def _pruning_check(trial: optuna.Trial) -> Any:
    def should_prune(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return should_prune


def _record(
    number: int, state: str, params: dict[str, Any], plan: Plan, result: Any
) -> TrialRecord:
    name = plan.spec.metric
    metrics = {
        name: result.value,
        f"{name}_std": result.std,
        "fit_seconds": result.fit_seconds,
        "n_folds_run": len(result.fold_values),
    }
    metrics |= {k: v for k, v in result.info.items()}
    series = {f"{name}_fold": result.fold_values, **result.curves}
    oof = None
    if result.oof_index is not None:
        oof = (plan.data.task, plan.data.y[result.oof_index], result.oof_scores)
    return TrialRecord(number, state, params, metrics, series, oof=oof)


def run(cfg: DictConfig) -> report.Summary:
    """Run (or resume) the configured study to its budget and report on it."""
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    plan = make_plan(cfg)
    storage = open_storage(cfg.storage)
    tracker = (
        Tracker(cfg.tracking, plan.spec.name, plan.sampler_kind) if cfg.tracking.enabled else None
    )
    failures = 0
    try:
        study = open_study(cfg, plan, storage, tracker)
        with _progress(cfg, plan, study) as bar, watchdog(study, tracker):
            deadline = time.monotonic() + plan.spec.timeout if plan.spec.timeout else math.inf
            while time.monotonic() < deadline:
                trial = claim(study, storage, plan.budget, tracker, deadline)
                if trial is None:
                    break
                with heartbeat(trial, storage):
                    record = evaluate(plan, study, trial, tracker)
                failures = failures + 1 if record.state == "FAIL" else 0
                _show(bar, study, record, plan)
                if failures >= plan.spec.max_failures:
                    log.error(
                        "%d trials in a row failed: stopping; the last reason is in "
                        "MLflow tag hpo.fail_reason",
                        failures,
                    )
                    break
        summary = finish(cfg, plan, study, tracker)
    except BaseException:
        if tracker:
            tracker.flush()
            tracker.close_study("KILLED")
        raise
    finally:
        if tracker:
            tracker.flush()  # never leave the writer process (or its queued writes) behind
    if failures >= plan.spec.max_failures:
        raise RuntimeError(f"{failures} trials in a row failed")
    return summary


def _progress(cfg: DictConfig, plan: Plan, study: optuna.Study) -> tqdm:
    done = len(study.get_trials(deepcopy=False, states=COUNTED[:2]))
    return tqdm(
        total=plan.budget,
        initial=min(done, plan.budget or done),
        unit="trial",
        desc=plan.spec.name,
        disable=not (cfg.progress and sys.stderr.isatty()),
        dynamic_ncols=True,
    )


def _show(bar: tqdm, study: optuna.Study, record: TrialRecord, plan: Plan) -> None:
    value = record.metrics.get(plan.spec.metric)
    shown = f"{value:.4f}" if value is not None else "-"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    values = [t.value for t in complete if t.value is not None]
    pick = max if plan.direction == "maximize" else min
    best = f"{pick(values):.4f}" if values else "-"
    if record.state != "FAIL":
        bar.update(1)
    bar.set_postfix_str(f"best {plan.spec.metric}={best}")
    if bar.disable:
        log.info(
            "trial %d %s %s=%s best=%s", record.number, record.state, plan.spec.metric, shown, best
        )


def finish(
    cfg: DictConfig, plan: Plan, study: optuna.Study, tracker: Tracker | None
) -> report.Summary:
    """Summary, plots, config and the refit best model on the parent run."""
    summary = report.summarize(study, plan.spec.metric)
    summary.where["optuna storage"] = display_url(cfg.storage)
    if tracker is None:
        return summary
    texts = [("config.yaml", OmegaConf.to_yaml(cfg, resolve=True)), *report.plots(study)]
    metrics: dict[str, float] = {f"n_{state.lower()}": n for state, n in summary.counts.items()}
    tags: dict[str, str] = {}
    if summary.best_value is not None:
        metrics["best_value"] = summary.best_value
        if summary.best_std is not None:
            metrics[f"best_{plan.spec.metric}_std"] = summary.best_std
        tags = {
            "hpo.best_trial": str(summary.best_number),
            **{f"best.{k}": str(v) for k, v in summary.best_params.items()},
        }
    tracker.flush()
    tracker.log_study(metrics, tags, texts)
    if summary.best_number is not None and tracker.parent_tag("hpo.model_trial") != str(
        summary.best_number
    ):
        _log_best_model(plan, study, tracker)
    tracker.close_study()
    summary.where["mlflow"] = f"{tracker.ui_command()}  (experiment '{plan.spec.name}')"
    return summary


def _log_best_model(plan: Plan, study: optuna.Study, tracker: Tracker) -> None:
    best = study.best_trial
    data = plan.data
    model = plan.objective.refit(
        best.params,
        data.X,
        data.y,
        data.n_classes,
        best.user_attrs.get(CV_ATTR, {}).get("info", {}),
        plan.seed,
    )
    sample = data.X[:5]
    uri = log_model(
        tracker,
        model,
        plan.objective.flavor,
        sample,
        np.asarray(plan.objective.predict(model, sample)),
        best.number,
    )
    tracker.log_study({}, {"hpo.model_trial": str(best.number), "hpo.model_uri": uri}, [])
