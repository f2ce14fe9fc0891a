"""The procedure: outer folds, each fold's inner study on its training rows, the refit winner
scored on its test rows; and ``with_nested``, the command's study followed by nested CV."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import optuna

from hpo import report
from hpo.config import Config
from hpo.data import Dataset
from hpo.errors import StudyStopped, UserError
from hpo.evaluation.nested.result import NestedResult, OuterFold, inner_name
from hpo.folds import Folds, make_folds
from hpo.names import CV_ATTR, CV_FIT_FACTS
from hpo.pruning import without_pruning
from hpo.runner import Plan, make_plan, run
from hpo.samplers import GridSampler, build_pruner, build_sampler, trial_sampler
from hpo.storages import open_storage, storage_line

log = logging.getLogger(__name__)
REFUSED = {"loo": "leave-one-out", "holdout": "holdout", "group_holdout": "group_holdout"}


def settings(cfg: Config, plan: Plan) -> tuple[int, int]:
    """(outer folds, trials per inner study), checked before anything runs: one user error
    line naming the fix."""
    nested = cfg.evaluation.nested
    outer = int(nested.outer)
    if outer == 0 and nested.only:
        raise UserError(
            "evaluation.nested.only=true runs nested CV alone, and evaluation.nested.outer is 0: "
            "set evaluation.nested.outer=5 (or drop evaluation.nested.only)"
        )
    if outer < 2:
        raise UserError(
            f"evaluation.nested.outer is {outer}: nested CV needs 2 or more outer folds, "
            "set evaluation.nested.outer=5 (or 0 for none)"
        )
    scheme = plan.cv.scheme if plan.cv is not None else ""
    if scheme in REFUSED:
        raise UserError(
            f"nested CV splits the rows as the study's CV does, and {REFUSED[scheme]} cannot make "
            f"{outer} outer folds: choose cv=stratified_kfold, kfold, timeseries or group_kfold, "
            "or drop evaluation.nested"
        )
    if cfg.schedule.kind != "none":
        raise UserError(
            f"evaluation.nested does not run with schedule={cfg.schedule.kind}: "
            "run it on the night's study with schedule=none study.name=NAME-YYYY-MM-DD"
        )
    trials = nested.trials if nested.trials is not None else plan.spec.n_trials
    if trials is None or trials < 1:
        raise UserError(
            f"evaluation.nested.trials is {trials}: set evaluation.nested.trials=N "
            "(a positive number: each inner study's trials)"
        )
    return outer, int(trials)


def outer_folds(plan: Plan, outer: int) -> Folds:
    """The study's tuning rows in ``outer`` folds, by the study's own kind of split
    (stratified, grouped or in time order as its CV is)."""
    assert plan.cv is not None
    try:
        return make_folds(replace(plan.cv, n_splits=outer), plan.data)
    except UserError as err:  # its fix names cv.n_splits: here it is the outer folds
        why = str(err).split(": ", 1)[-1].split(";")[0].rstrip(".")
        raise UserError(
            f"nested CV cannot split the {len(plan.data.y)} tuning rows into {outer} outer "
            f"folds ({why}): lower evaluation.nested.outer"
        ) from None


def inner_plan(cfg: Config, plan: Plan, k: int, data: Dataset, trials: int) -> tuple[Config, Plan]:
    """Outer fold ``k``'s study: the study's plan on the outer-training rows ``data``, with its
    own name, budget and sampler seed, and nothing of the end of a study (no held-out rows,
    BBC-CV, threshold or curves: the outer-test rows judge it). Its config runs trials only,
    without MLflow."""
    seed = int(np.random.SeedSequence([int(cfg.seed), k]).generate_state(1)[0])
    sampling = {**cfg.sampler, "seed": seed} if cfg.sampler.get("seed") is not None else cfg.sampler
    sampler = build_sampler(sampling, plan.space, warn=False)
    if isinstance(sampler, GridSampler):
        sampler.max_retry = int(cfg.storage.max_retry)
    budget = trials if plan.sampler_kind != "grid" else min(trials, plan.space.grid_size())
    inner = replace(
        plan,
        spec=replace(plan.spec, name=inner_name(plan.spec.name, k), n_trials=budget, timeout=None),
        data=data,
        folds=make_folds(plan.cv, data) if plan.cv is not None else plan.folds,
        sampler=sampler,
        pruner=without_pruning(plan.further_objectives, build_pruner(cfg.pruner)),
        budget=budget,
        sampler_for=(lambda number: trial_sampler(sampling, plan.space, number))
        if plan.sampler_for is not None
        else None,
        test=None,
        bbc_boot=0,
        cost=None,
        curves="off",
        config_text="",
    )
    quiet = replace(
        cfg,
        tracking=replace(cfg.tracking, enabled=False),
        evaluation=replace(cfg.evaluation, nested=replace(cfg.evaluation.nested, outer=0)),
        trials_only=True,
        workers=1,
    )
    return quiet, inner


def outer_fold(
    cfg: Config,
    plan: Plan,
    k: int,
    rows: tuple[np.ndarray, np.ndarray],
    trials: int,
    storage: optuna.storages.BaseStorage,
) -> OuterFold:
    """Tune on the outer-training rows (resuming the inner study), refit its winner on all
    of them and score the outer-test rows with the study metric."""
    train, test = plan.data.rows(rows[0]), plan.data.rows(rows[1])
    quiet, inner = inner_plan(cfg, plan, k, train, trials)
    log.info("nested CV: outer fold %d, study %s on %d rows", k, inner.spec.name, len(train.y))
    run(quiet, inner)
    study = optuna.load_study(study_name=inner.spec.name, storage=storage)
    summary = report.summarize(
        study, plan.spec.metric, [o.name for o in plan.further_objectives], plan.constraints
    )
    if summary.best_number is None or summary.best_value is None:
        counts = report.count_states(study.get_trials(deepcopy=False))
        feasible = " feasible" if plan.constraints else ""
        raise StudyStopped(
            f"nested CV: inner study {inner.spec.name} has no{feasible} complete trial "
            f"({', '.join(f'{n} {s.lower()}' for s, n in counts.items())}): fix the objective "
            "or its space, then run the same command to resume"
        )
    best = study.get_trials(deepcopy=False)[summary.best_number]
    return OuterFold(
        k,
        inner.spec.name,
        _outer_score(inner, best, test),
        float(summary.best_value),
        best.number,
        dict(best.params),
        len(train.y),
        len(test.y),
    )


def _outer_score(inner: Plan, best: optuna.trial.FrozenTrial, test: Dataset) -> float:
    """The inner winner refit on every outer-training row (as the study's winner is refit on
    every tuning row), scored on the outer-test rows."""
    fit_facts = best.user_attrs.get(CV_ATTR, {}).get(CV_FIT_FACTS, {})
    model = inner.objective.refit(
        best.params, inner.data.X, inner.data.y, inner.data.n_classes, fit_facts, inner.seed
    )
    return float(inner.metric(test.y, np.asarray(inner.objective.predict(model, test.X))))


def nested_cv(cfg: Config, plan: Plan) -> NestedResult:
    """Every outer fold in turn (each inner study resumed where a run left it)."""
    outer, trials = settings(cfg, plan)
    storage = open_storage(cfg.storage)
    result = NestedResult(plan.spec.metric, trials)
    for k, rows in enumerate(outer_folds(plan, outer)):
        result.folds.append(outer_fold(cfg, plan, k, rows, trials, storage))
    return result


def with_nested(cfg: Config) -> report.Summary | None:
    """``python -m hpo ... evaluation.nested.outer=K``: the study as always (its summary and
    MLflow runs as without nested CV), then the nested estimate added to its summary;
    ``evaluation.nested.only=true``: the nested part alone, beside what the study has.

    Every setting is checked first, so a refused outer scheme costs no trial. A worker
    (``trials_only=true``) only runs the study's trials: whoever reports runs the nested part.
    """
    if cfg.trials_only:
        return run(cfg)
    plan = make_plan(cfg)
    outer, _ = settings(cfg, plan)
    outer_folds(plan, outer)  # a data set too small for them is refused now, not after the study
    if cfg.evaluation.nested.only:
        summary = _study_so_far(cfg, plan)
    elif cfg.workers > 1:
        from hpo.workers import fan_out

        summary = fan_out(cfg)
    else:
        ran = run(cfg, plan)
        assert ran is not None  # not trials_only: run() reports
        summary = ran
    try:
        summary.nested = nested_cv(cfg, plan)
    except StudyStopped as err:  # an inner study's trials kept failing: the study's summary
        raise StudyStopped(str(err), summary) from None
    if cfg.tracking.enabled:
        from hpo.evaluation.nested.runs import log_nested

        where = log_nested(cfg, plan, summary.nested)
        if where:
            summary.where.setdefault("mlflow", where)
    return summary


def _study_so_far(cfg: Config, plan: Plan) -> report.Summary:
    """The study's summary as its storage has it, without running or finishing it (none
    yet: no trials), for ``evaluation.nested.only=true``."""
    names = [o.name for o in plan.further_objectives]
    try:
        study = optuna.load_study(study_name=plan.spec.name, storage=open_storage(cfg.storage))
        summary = report.summarize(study, plan.spec.metric, names, plan.constraints)
    except KeyError:  # no such study
        summary = report.Summary(
            plan.spec.name, plan.spec.metric, plan.direction, report.count_states([]), extra=names
        )
    summary.where["optuna storage"] = storage_line(cfg.storage)
    return summary
