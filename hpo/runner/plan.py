"""The plan: the config resolved and checked once, before the first trial.

Everything that can be wrong with a study (objective settings, space,
direction, budget, data, folds) is found here, as a one-line user error,
rather than in the middle of a night of trials.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import optuna
from hydra.utils import instantiate

from hpo import constraints, pareto
from hpo.config import (
    Config,
    Constraint,
    CostConfig,
    CVConfig,
    ExtraObjective,
    StudyConfig,
    effective_cv,
    to_yaml,
)
from hpo.cv import CVSetup, folds_side_by_side
from hpo.data import Dataset, load_data
from hpo.errors import UserError
from hpo.folds import Folds, make_folds
from hpo.held_out import split_off
from hpo.metrics import Metric, get_metric
from hpo.pruning import fold_scores, without_pruning
from hpo.samplers import (
    GridSampler,
    build_pruner,
    build_sampler,
    sampler_kind,
    sampler_traits,
    trial_sampler,
)
from hpo.secrets import mask
from hpo.space import Space, parse_space
from objectives.base import BadSetting, Objective

log = logging.getLogger(__name__)
Direction = Literal["maximize", "minimize"]
Curves = Literal["auto", "on", "off"]


@dataclass
class Plan:
    """Everything resolved and checked before the first trial."""

    spec: StudyConfig
    objective: Objective
    data: Dataset
    folds: Folds
    metric: Metric
    direction: Direction
    space: Space
    sampler: optuna.samplers.BaseSampler
    sampler_kind: str
    pruner: optuna.pruners.BasePruner
    budget: int | None
    leave_one_out: bool  # the metric is computed once on all out-of-fold predictions
    seed: int
    n_jobs: int
    outage_limit: float = 300.0  # seconds to wait out an unreachable database
    sampler_for: Callable[[int], optuna.samplers.BaseSampler] | None = None  # by trial number
    further_objectives: tuple[ExtraObjective, ...] = ()  # after the metric (hpo/pareto.py)
    cv: CVConfig | None = None  # the CV the folds came from, to say what changed on resume
    test: Dataset | None = None  # held-out rows (evaluation.test_size): only the winner sees them
    bbc_boot: int = 0  # bootstraps of BBC-CV at the end (evaluation.bbc_boot); 0: none
    cost: tuple[float, float] | None = None  # (fp, fn): a binary task's threshold by cost
    curves: Curves = "auto"  # the winner's bias/variance curves (evaluation.curves)
    config_text: str = ""  # the composed config as YAML, passwords masked (for the parent run)
    constraints: tuple[Constraint, ...] = ()  # bounds on fit facts a winner meets (constraints.py)

    @property
    def directions(self) -> list[Direction]:
        return [self.direction, *(cast(Any, o.direction) for o in self.further_objectives)]

    def data_print(self) -> dict[str, str]:
        """What the study's data is, to refuse resuming on other data: a hash and its shape."""
        X, digest = self.data.X, self.data.fingerprint()
        shape = f"{len(X)} rows" + (f" x {X.shape[1]} columns" if X.ndim > 1 else "")
        return {"hash": digest, "what": f"{shape}, hash {digest[:8]}"}

    def folds_print(self) -> dict[str, str]:
        """What the study's folds are, to refuse resuming on other folds: a hash of every
        fold's indices (scheme, splits, seed and groups all change them) and the CV."""
        digest = hashlib.sha256()
        for train, valid in self.folds:
            digest.update(np.asarray(train, dtype=np.int64).tobytes() + b"|")
            digest.update(np.asarray(valid, dtype=np.int64).tobytes() + b";")
        cv = self.cv
        what = (
            f"{len(self.folds)} folds"
            if cv is None
            else (f"{cv.scheme}, {len(self.folds)} folds, seed {cv.seed}")
        )
        return {"hash": digest.hexdigest()[:16], "what": what}

    @property
    def cv_setup(self) -> CVSetup:
        """What ``hpo.cv.cross_validate`` scores a trial's parameters on."""
        return CVSetup(
            self.data,
            self.folds,
            self.metric,
            self.seed,
            self.leave_one_out,
            self.n_jobs,
            fold_scores=fold_scores(self.pruner),
            direction=self.direction,
        )


def make_plan(cfg: Config) -> Plan:
    spec = cfg.study
    objective = _objective(spec.objective)
    space = parse_space(spec.space)
    kind = sampler_kind(cfg.sampler)
    try:  # fixed settings and the space's values (grid values only where the grid is used)
        objective.validate(_space_values(space, with_grid=kind == "grid"))
    except BadSetting as err:
        raise UserError(str(err)) from None
    metric = get_metric(spec.metric, objective.task)  # type: ignore[arg-type]
    direction = _direction(spec.direction, metric)
    traits = sampler_traits(cfg.sampler)
    further = pareto.extra_objectives(spec, kind, traits.multi_objective)
    pareto.refuse_unknown_facts(further, objective.fit_fact_names)
    bounds = constraints.checked(spec, kind, traits.constraints, objective.fit_fact_names)
    sampler = build_sampler(cfg.sampler, space)
    if isinstance(sampler, GridSampler):
        sampler.max_retry = int(cfg.storage.max_retry)
    pruner = without_pruning(further, build_pruner(cfg.pruner))
    budget = _budget(spec, kind, space)
    cv = effective_cv(cfg)
    data = load_data(spec.data, objective.task, int(cfg.seed))  # type: ignore[arg-type]
    test = None
    if cfg.evaluation.test_size:  # reserved before anything is tuned on the data
        data, test = split_off(data, cv, cfg.evaluation.test_size, int(cfg.seed))
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
        (lambda number: trial_sampler(cfg.sampler, space, number))
        if traits.reseed_per_trial
        else None,
        further,
        cv,
        test,
        int(cfg.evaluation.bbc_boot),
        _cost(cfg.evaluation.cost, data),
        _curves(cfg.evaluation.curves),
        mask(to_yaml(cfg)),
        constraints=bounds,
    )


def _curves(value: object) -> Curves:
    """``evaluation.curves`` as auto, on or off (Hydra gives true/false as booleans)."""
    said = str(value).strip().lower()
    if said == "auto":
        return "auto"
    if said in ("true", "on", "yes", "1"):
        return "on"
    if said in ("false", "off", "no", "0", "none", "null"):
        return "off"
    raise UserError(f"evaluation.curves is '{value}': use auto, true or false")


def _cost(cost: CostConfig, data: Dataset) -> tuple[float, float] | None:
    """``evaluation.cost`` as (fp, fn), checked before the first trial: two costs that rank
    thresholds, for a binary task. None: not given."""
    if not cost.given:
        return None
    if data.task != "classification" or data.n_classes != 2:
        raise UserError(
            f"evaluation.cost chooses a binary task's threshold, and '{data.name}' is "
            f"{'regression' if data.task != 'classification' else f'{data.n_classes} classes'}: "
            "drop evaluation.cost"
        )
    fp, fn = cost.pair()
    if not (np.isfinite([fp, fn]).all() and min(fp, fn) >= 0 and fp + fn > 0):
        raise UserError(
            f"evaluation.cost {{fp: {fp:g}, fn: {fn:g}}} cannot rank thresholds: give two "
            "costs >= 0, at least one of them > 0"
        )
    return fp, fn


def _direction(stated: str | None, metric: Metric) -> Direction:
    """The metric's own direction, unless one is stated; a stated one against it is warned of.

    Shipped studies state none, so that ``study.metric=log_loss`` on an F1 study
    minimizes, as log loss must be.
    """
    if stated is None:
        return metric.direction
    if stated not in ("maximize", "minimize"):
        raise UserError(f"study.direction is '{stated}': use maximize or minimize")
    if stated != metric.direction:
        log.warning(
            "study.direction=%s, but %s is better when %s: the study %s it as stated "
            "(drop study.direction to use the metric's own)",
            stated,
            metric.name,
            "lower" if metric.direction == "minimize" else "higher",
            "maximizes" if stated == "maximize" else "minimizes",
        )
    return cast(Direction, stated)


def _budget(spec: StudyConfig, kind: str, space: Space) -> int | None:
    """The number of trials to run: study.n_trials, at most the grid's size; None: the timeout."""
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
    return budget


def _space_values(space: Space, with_grid: bool) -> dict[str, tuple[Any, ...]]:
    """For Objective.validate: each parameter's choices, or its range's ends (and its grid
    values, ``with_grid``)."""
    values: dict[str, tuple[Any, ...]] = {}
    for p in space.params:
        d = p.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            listed: tuple[Any, ...] = tuple(d.choices)
        else:
            grid = (p.grid or ()) if with_grid else ()
            listed = (d.low, d.high, *grid)  # type: ignore[attr-defined]
        values[p.name] = tuple(dict.fromkeys(listed))
    return values


def _objective(node: Any) -> Objective:
    try:
        objective = instantiate(node)
    except Exception as err:
        cause = err.__cause__ or err
        if isinstance(cause, BadSetting):
            raise UserError(str(cause)) from None
        raise UserError(
            f"cannot build study.objective: {str(cause).splitlines()[0]}; fix study.objective"
        ) from None
    if not isinstance(objective, Objective):
        raise UserError(f"study.objective._target_ {node.get('_target_')} is not an Objective")
    return objective
