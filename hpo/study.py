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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import TrialState
from tqdm import tqdm

from hpo import pareto, report
from hpo.config import ExtraObjective, StudyConfig, effective_cv
from hpo.cv import (
    CVResult,
    Folds,
    FoldsPruned,
    cross_validate,
    folds_side_by_side,
    make_folds,
)
from hpo.data import Dataset, load_data
from hpo.errors import UserError
from hpo.metrics import Metric, get_metric
from hpo.pruning import StepReports
from hpo.records import PARENT_ATTR, RUN_ATTR, TrialRecord
from hpo.samplers import (
    RESEEDED,
    GridSampler,
    build_pruner,
    build_sampler,
    sampler_kind,
    trial_sampler,
)
from hpo.space import Space, parse_space
from hpo.storage import (
    DatabaseOutage,
    StaleTrials,
    display_url,
    is_outage,
    mask,
    max_retry,
    open_storage,
    retrying,
    study_lock,
)
from objectives.base import BadSetting, Objective

if TYPE_CHECKING:
    from hpo.tracking import Tracker

log = logging.getLogger(__name__)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
WAIT_SECONDS = 1.0  # how often a worker waiting on others' running trials looks again
UNOWNED_SECONDS = 120.0  # a RUNNING trial no worker has marked by then is failed
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
    outage_limit: float = 300.0  # seconds to wait out an unreachable database
    sampler_for: Callable[[int], optuna.samplers.BaseSampler] | None = None  # by trial number
    extra: tuple[ExtraObjective, ...] = ()  # further objectives (hpo/pareto.py)

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [self.direction, *(cast(Any, o.direction) for o in self.extra)]


def make_plan(cfg: DictConfig) -> Plan:
    spec: StudyConfig = OmegaConf.to_object(cfg.study)  # type: ignore[assignment]
    objective = _objective(cfg.study.objective)
    space = parse_space(spec.space)
    try:
        objective.validate(_space_values(space))  # fixed settings and the space's values
    except BadSetting as err:
        raise UserError(str(err)) from None
    metric = get_metric(spec.metric, objective.task)  # type: ignore[arg-type]
    direction = spec.direction or metric.direction
    if direction not in ("maximize", "minimize"):
        raise UserError(f"study.direction is '{direction}': use maximize or minimize")
    direction = cast(Literal["maximize", "minimize"], direction)
    kind = sampler_kind(cfg.sampler)
    extra = pareto.extra_objectives(spec, kind)
    sampler = build_sampler(cfg.sampler, space)
    if isinstance(sampler, GridSampler):
        sampler.max_retry = int(cfg.storage.max_retry)
    pruner = pareto.without_pruning(extra, build_pruner(cfg.pruner))
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
    folds = make_folds(cv, data)
    return Plan(
        spec,
        objective,
        data,
        folds,
        metric,
        direction,
        space,
        sampler,
        kind,
        pruner,
        budget,
        cv.scheme == "loo",
        int(cfg.seed),
        int(cfg.n_jobs) or folds_side_by_side(len(folds), os.cpu_count() or 1),
        float(cfg.storage.outage_limit),
        (lambda number: trial_sampler(cfg.sampler, space, number)) if kind in RESEEDED else None,
        extra,
    )


def _space_values(space: Space) -> dict[str, tuple[Any, ...]]:
    """For Objective.validate: each parameter's choices, or its range's ends and grid values."""
    values: dict[str, tuple[Any, ...]] = {}
    for p in space.params:
        d = p.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            listed: tuple[Any, ...] = tuple(d.choices)
        else:
            listed = (d.low, d.high, *(p.grid or ()))  # type: ignore[attr-defined]
        values[p.name] = tuple(dict.fromkeys(listed))
    return values


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
            directions=plan.directions,
            sampler=plan.sampler,
            pruner=plan.pruner,
            load_if_exists=True,
        )
        _check_compatible(study, plan)
        recover(study, tracker)
        _refuse_second_sqlite_worker(study, cfg.storage.url)
        if tracker is not None:
            existing = study.user_attrs.get(PARENT_ATTR)
            tags = {"hpo.metric": plan.spec.metric, "hpo.direction": plan.direction}
            if plan.extra:
                tags["hpo.objectives"] = ", ".join(f"{o.name} {o.direction}" for o in plan.extra)
            parent = tracker.open_parent(existing, tags)
            if parent != existing:
                study.set_user_attr(PARENT_ATTR, parent)
    return study


def _check_compatible(study: optuna.Study, plan: Plan) -> None:
    """Refuse to join a study created for another direction, metric or space."""
    name = plan.spec.name
    directions = [d.name.lower() for d in study.directions]
    if directions != plan.directions:
        raise UserError(
            f"study '{name}' exists with direction {', '.join(directions)}, "
            f"not {', '.join(plan.directions)}: keep its directions or set study.name=NEW_NAME"
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


def _refuse_second_sqlite_worker(study: optuna.Study, url: str) -> None:
    """SQLite serves one worker process: another live one on this study is refused, by pid."""
    if not url.strip().startswith("sqlite:"):
        return
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        if worker.startswith(host + ":") and _alive(int(worker.rsplit(":", 1)[1])):
            raise UserError(
                f"process {worker.rsplit(':', 1)[1]} is already running study "
                f"'{study.study_name}' on SQLite, which serves one worker: wait for it, or "
                "use storage=postgres (many machines) or storage=local (one machine)"
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
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry(study))  # same params
        retry(study, study._storage.get_trial(trial._trial_id))
        log.warning(
            "trial %d was left running by dead process %s: marked FAIL", trial.number, worker
        )
        if tracker is not None and RUN_ATTR in trial.user_attrs:
            tracker.kill_run(trial.user_attrs[RUN_ATTR], f"process {worker} died")


def _reap_unowned(study: optuna.Study) -> None:
    """Fail RUNNING trials that no worker ever took (created just as a connection dropped).

    A worker marks its trial within milliseconds of asking for it; one still
    unmarked after UNOWNED_SECONDS has no worker, no heartbeat and would
    otherwise hold a place in the budget forever.
    """
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if "worker" not in trial.user_attrs and now - started > UNOWNED_SECONDS:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study.tell(trial.number, state=TrialState.FAIL)
                log.warning("trial %d was never started by a worker: marked FAIL", trial.number)


def heartbeat(
    trial: optuna.Trial, storage: optuna.storages.BaseStorage
) -> contextlib.AbstractContextManager[None]:
    """Record the trial's heartbeat every interval while it runs (nothing without heartbeats).

    Optuna starts its heartbeat thread only inside ``Study.optimize``, and that
    thread dies at the first database error; this one waits out an outage.
    """

    def beat() -> None:
        try:
            storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        except Exception as err:
            if not is_outage(err):
                log.warning("heartbeat of trial %d: %s", trial.number, mask(str(err))[:200])

    return _every(_heartbeat_interval(storage), beat, f"hpo-heartbeat-{trial.number}", first=True)


def _heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """The storage's heartbeat interval, or None when it keeps no heartbeats."""
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        return storage.get_heartbeat_interval()
    return None


@contextlib.contextmanager
def _every(
    interval: float | None, call: Callable[[], None], name: str, first: bool
) -> Iterator[None]:
    """Run ``call`` every ``interval`` seconds in a thread while the block runs (``first``: at
    once too); no thread when ``interval`` is None. ``call`` handles its own errors."""
    if not interval:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        if first:
            call()
        while not stop.wait(interval):
            call()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
    sampler_for: Callable[[int], optuna.samplers.BaseSampler] | None = None,
) -> optuna.Trial | None:
    """A new trial while the study's finished + running trials are below the budget.

    ``sampler_for(n)`` gives the sampler of the study's n-th trial (seeded by
    trial number, so that workers do not draw the same points in step).
    When running trials hold the rest of the budget, wait: if one of their
    workers dies, its trial fails (heartbeat) and is retried here. None once
    the study's finished trials reach the budget (or the time is up).
    """
    while True:
        with study_lock(storage, study.study_name):
            trials = study.get_trials(deepcopy=False)
            counted = [t for t in trials if t.state in COUNTED]
            grid = study.sampler if isinstance(study.sampler, GridSampler) else None
            free, taken = grid.points_left(study) if grid else (1, 0)
            if free and (budget is None or len(counted) < budget):
                if sampler_for is not None:
                    study.sampler = sampler_for(len(trials))
                return study.ask()
            if not free and not taken:
                return None  # every grid point is done, or failed too often to try again
            finished = sum(t.state != TrialState.RUNNING for t in counted)
            if free and budget is not None and finished >= budget:
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(WAIT_SECONDS)
        recover(study, tracker)


def recover(study: optuna.Study, tracker: Tracker | None) -> None:
    """Fail the trials of dead workers (by heartbeat, or by pid on this host), close their runs."""
    _reap_orphans(study, tracker)
    _reap_unowned(study)
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


def watchdog(
    study: optuna.Study, tracker: Tracker | None
) -> contextlib.AbstractContextManager[None]:
    """While this worker runs trials, look for dead workers' trials every heartbeat interval."""

    def watch() -> None:
        try:
            recover(study, tracker)
        except Exception as err:  # an outage: the main loop decides what to do
            log.warning("could not check for dead workers: %s", mask(str(err))[:200])

    return _every(_heartbeat_interval(study._storage), watch, "hpo-watchdog", first=False)


def evaluate(
    plan: Plan, study: optuna.Study, trial: optuna.Trial, tracker: Tracker | None
) -> TrialRecord:
    """Run one trial and tell Optuna its outcome; returns what the tracker logs."""
    run_id: str | None = None
    interrupted: BaseException | None = None
    try:  # Ctrl-C or SIGTERM while starting: the trial still ends as FAIL, its run KILLED
        run_id = tracker.start_trial(trial.number) if tracker else None
        owner = {"worker": f"{socket.gethostname()}:{os.getpid()}", RUN_ATTR: run_id}

        def claim_ownership() -> None:
            for key, value in owner.items():
                if value:
                    trial.set_user_attr(key, value)

        retrying(claim_ownership, plan.outage_limit, "starting a trial")
    except (KeyboardInterrupt, SystemExit) as err:
        interrupted = err
    params: dict[str, Any] = {}
    result: CVResult | None = None
    values: list[float] = []
    # pruner=none: no reports at all (each is a storage write, for nothing)
    reports = (
        None if isinstance(plan.pruner, optuna.pruners.NopPruner) else StepReports(study, trial)
    )
    try:
        if interrupted is not None:
            raise interrupted
        params = plan.space.suggest(trial)
        result = cross_validate(
            plan.objective,
            params,
            plan.data,
            plan.folds,
            plan.metric,
            plan.seed,
            reports.should_prune if reports else None,
            plan.pooled,
            plan.n_jobs,
        )
        if not math.isfinite(result.value):
            raise ValueError(f"objective value is {result.value}")
        values = pareto.values(result.value, result.fit_facts, plan.extra)
        record = _record(trial.number, "COMPLETE", params, plan, result)
    except FoldsPruned as pruned:
        result = pruned.result
        record = _record(trial.number, "PRUNED", params, plan, result)
        record.tags["hpo.prune_reason"] = str(pruned)  # e.g. "pruned at epoch 7 of fold 2"
    except optuna.TrialPruned:
        record = TrialRecord(trial.number, "PRUNED", params)
    except (Exception, KeyboardInterrupt, SystemExit) as err:
        reason = mask(f"{type(err).__name__}: {err}".splitlines()[0])[:500]
        record = TrialRecord(trial.number, "FAIL", params, tags={"hpo.fail_reason": reason})
        if isinstance(err, Exception):
            log.warning("trial %d failed: %s", trial.number, reason)
        else:
            interrupted = err
    if reports is not None:
        reports.flush()  # a pruned trial's value is its last stored step
    try:
        retrying(
            lambda: _tell(study, trial, record, result, values),
            plan.outage_limit,
            "storing a trial",
        )
    except DatabaseOutage:
        if tracker and run_id:
            tracker.kill_trial(run_id, "the database was unreachable when the trial ended")
        raise
    if interrupted is not None:  # Ctrl-C or SIGTERM: the run is KILLED, then we stop
        if tracker and run_id:
            tracker.kill_trial(run_id, record.tags["hpo.fail_reason"])
        raise interrupted
    if tracker and run_id:
        tracker.end_trial(run_id, record)
    return record


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    record: TrialRecord,
    result: CVResult | None,
    values: list[float],
) -> None:
    """Store the trial's CV facts in one user attr, then its final state (once: safe to retry).

    A trial already finished (told before the connection dropped, or failed as
    stale meanwhile) is left as it is; that is found out from the write that
    refuses it rather than by reading the trial first, a round trip per trial.
    """
    try:
        if result is not None:
            cv = {"std": result.std, "fold_values": result.fold_values, "info": result.fit_facts}
            trial.set_user_attr(CV_ATTR, cv)
        if record.state == "FAIL":
            trial.set_user_attr("fail_reason", record.tags["hpo.fail_reason"])
    except RuntimeError:  # Optuna: "Trial#N has already finished and can not be updated"
        if study._storage.get_trial(trial._trial_id).state.is_finished():
            return
        raise
    if record.state == "FAIL":
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    elif record.state == "PRUNED":
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
    else:
        assert result is not None
        study.tell(trial, values, skip_if_finished=True)


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
    metrics |= {k: v for k, v in result.fit_facts.items()}
    series = {f"{name}_fold": result.fold_values, **result.curves}
    oof = None
    if result.oof_index is not None:
        oof = (plan.data.task, plan.data.y[result.oof_index], result.oof_scores)
    return TrialRecord(number, state, params, metrics, series, oof=oof)


def run(cfg: DictConfig, plan: Plan | None = None) -> report.Summary | None:
    """Run (or resume) the configured study to its budget and report on it.

    With ``finish=false`` (a worker started by ``workers=N``) it only runs
    trials: the parent process reports once, and owns the parent run's state.
    ``plan``: one already made from ``cfg`` (hpo/schedule reads the data first).
    """
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    plan = plan or make_plan(cfg)
    storage = open_storage(cfg.storage)
    tracker = _tracker(cfg, plan)
    failures = 0
    try:
        study = retrying(
            lambda: open_study(cfg, plan, storage, tracker), plan.outage_limit, "opening the study"
        )
        with _progress(cfg, plan, study) as bar, watchdog(study, tracker):
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
                    _fail_if_running(study, trial)  # stopped before evaluate() could tell
                    raise
                failures = failures + 1 if record.state == "FAIL" else 0
                with contextlib.suppress(Exception):  # progress only: never fail a study on it
                    _show(bar, study, record, plan)
                if failures >= plan.spec.max_failures:
                    log.error(
                        "%d trials in a row failed: stopping; the last reason is in "
                        "MLflow tag hpo.fail_reason",
                        failures,
                    )
                    break
        summary = (
            retrying(lambda: finish(cfg, plan, study, tracker), plan.outage_limit, "finishing")
            if cfg.finish
            else None
        )
    except BaseException as err:
        if tracker:
            tracker.flush(prompt=not isinstance(err, Exception))  # SIGTERM, Ctrl-C: promptly
            if cfg.finish:
                tracker.close_study("KILLED")
        raise
    finally:
        if tracker:
            tracker.flush()  # never leave the writer process (or its queued writes) behind
    if failures >= plan.spec.max_failures:
        raise RuntimeError(f"{failures} trials in a row failed")
    return summary


def _fail_if_running(study: optuna.Study, trial: optuna.Trial) -> None:
    """Mark FAIL a trial this worker claimed but never told (SIGTERM just after claim())."""
    with contextlib.suppress(Exception):
        if not study._storage.get_trial(trial._trial_id).state.is_finished():
            study.tell(trial, state=TrialState.FAIL)


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
    best = _best_value(study, plan.direction)
    if record.state != "FAIL":
        bar.update(1)
    bar.set_postfix_str(f"best {plan.spec.metric}={best}")
    if bar.disable:
        log.info(
            "trial %d %s %s=%s best=%s", record.number, record.state, plan.spec.metric, shown, best
        )


def _best_value(study: optuna.Study, direction: str) -> str:
    """The best value so far, formatted: one query (get_best_trial), not every trial read back.

    A multi-objective study has no best trial: the best of its first objective.
    """
    if len(study.directions) == 1:
        try:
            return f"{study.best_value:.4f}"
        except ValueError:  # no complete trial yet
            return "-"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    values = [t.values[0] for t in complete if t.values]
    pick = max if direction == "maximize" else min
    return f"{pick(values):.4f}" if values else "-"


def finish(
    cfg: DictConfig, plan: Plan, study: optuna.Study, tracker: Tracker | None
) -> report.Summary:
    """Summary, plots, config and the refit best model on the parent run."""
    summary = report.summarize(study, plan.spec.metric, [o.name for o in plan.extra])
    summary.where["optuna storage"] = display_url(cfg.storage)
    if tracker is None:
        return summary
    texts = [("config.yaml", OmegaConf.to_yaml(cfg, resolve=True)), *report.plots(study, summary)]
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
        if summary.front:
            tags["hpo.pareto_front"] = ",".join(str(row["trial"]) for row in summary.front)
    tracker.flush()
    tracker.log_study(metrics, tags, texts)
    if summary.best_number is not None and tracker.parent_tag("hpo.model_trial") != str(
        summary.best_number
    ):
        _log_best_model(plan, study.get_trials(deepcopy=False)[summary.best_number], tracker)
    tracker.close_study()
    summary.where["mlflow"] = f"{tracker.ui_command()}  (experiment '{plan.spec.name}')"
    return summary


def _tracker(cfg: DictConfig, plan: Plan) -> Tracker | None:
    """The MLflow tracker, imported only when tracking is on (a worker without it starts faster)."""
    if not cfg.tracking.enabled:
        return None
    from hpo.tracking import Tracker

    return Tracker(cfg.tracking, plan.spec.name, plan.sampler_kind)


def _log_best_model(plan: Plan, best: optuna.trial.FrozenTrial, tracker: Tracker) -> None:
    """Refit and log ``best``: the best trial, or the front's best by the study metric."""
    from hpo.tracking import log_model

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
