"""Samplers and pruners from their Hydra configs, checked against the search space.

Their options are checked against the constructors' types first (hpo/option_types.py).
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from hydra.utils import get_class, instantiate
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import UserError
from hpo.option_types import check_types
from hpo.space import Space
from hpo.storages import MAX_RETRY

log = logging.getLogger(__name__)
TRAITS_KEY = "hpo"  # the sampler YAML's mapping of what hpo must know (not passed to the sampler)
TRAITS = ("reseed_per_trial", "multi_objective", "constraints")  # the keys under it


@dataclass(frozen=True)
class SamplerTraits:
    """What the runner must know of a sampler, read from its YAML's ``hpo:`` mapping.

    ``reseed_per_trial``: workers built from one config would draw the same
    points in step, so each trial gets a sampler seeded by its number
    (``trial_sampler``); only for samplers whose state lives in the storage.
    ``multi_objective``: the sampler can optimize several objectives.
    ``constraints``: the sampler honours study.constraints (it reads the trials'
    ``trial.constraints``, hpo/constraints.py); a study with constraints under one that
    does not is refused up front.
    """

    reseed_per_trial: bool
    multi_objective: bool
    constraints: bool = False


def sampler_traits(cfg: Mapping[str, Any]) -> SamplerTraits:
    """The sampler's traits: its YAML's ``hpo:`` mapping, else what its class suggests.

    A sampler YAML without ``hpo:`` is reseeded when its class takes a seed (and
    is not a grid, whose seed orders its points), taken as multi-objective, and as
    honouring constraints when its class takes Optuna's ``constraints_func`` (the
    samplers that have it are the ones that read ``trial.constraints``).
    """
    given = cfg.get(TRAITS_KEY) or {}
    unknown = set(given) - set(TRAITS)
    if unknown:
        known = " or ".join(f"sampler.{TRAITS_KEY}.{t}" for t in TRAITS)
        raise UserError(
            f"sampler.{TRAITS_KEY}.{sorted(unknown)[0]} is not a sampler trait: use {known}"
        )
    try:
        cls = get_class(str(cfg.get("_target_")))
    except Exception:
        cls = None  # no such class: building the sampler names it
    takes = inspect.signature(cls).parameters if cls is not None else {}
    is_grid = cls is not None and issubclass(cls, optuna.samplers.GridSampler)
    return SamplerTraits(
        reseed_per_trial=bool(given.get("reseed_per_trial", "seed" in takes and not is_grid)),
        multi_objective=bool(given.get("multi_objective", True)),
        constraints=bool(given.get("constraints", "constraints_func" in takes)),
    )


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, where a failed point is run again and a finished one never.

    Optuna counts a grid point as visited once any trial there has finished,
    failed ones included, so a failed point would never be evaluated while
    the trial that replaces it in the budget repeats a done point. Here a
    point is done once a trial there is COMPLETE or PRUNED (matched by its
    parameters too, so a dead worker's retry, which has none of Optuna's grid
    ids, counts), taken while a trial there is RUNNING or WAITING, and given
    up after failing ``storage.max_retry`` + 1 times. Without Optuna's
    ``study.stop()`` once the grid is covered, which raises outside
    ``optimize``: hpo's budget loop asks ``points_left`` instead, under the
    study lock, so no two workers take the same point.
    """

    max_retry = MAX_RETRY  # make_plan sets storage.max_retry

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        return None

    def points_left(self, study: optuna.Study) -> tuple[int, int]:
        """(free points, points taken by a running or waiting trial)."""
        free, taken = self._points(study)
        return len(free), len(taken)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Give the trial a free point (Optuna's shortcut, point = trial number, is not used:
        with retries and enqueued trials a number's point may be done already)."""
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return  # a retry or an enqueued trial: its parameters are fixed
        free, taken = self._points(study)
        choices = sorted(free or taken) or list(range(self._n_min_trials))
        grid_id = int(self._rng.rng.choice(choices))
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)

    def _points(self, study: optuna.Study) -> tuple[set[int], set[int]]:
        done: set[int] = set()
        taken: set[int] = set()
        failures: Counter[int] = Counter()
        for trial in study._storage.get_all_trials(study._study_id, deepcopy=False):
            point = self._point_of(trial)
            if point is None:
                continue
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
                done.add(point)
            elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
                taken.add(point)
            elif trial.state == TrialState.FAIL:
                failures[point] += 1
        given_up = {p for p, n in failures.items() if n > self.max_retry}
        left = set(range(self._n_min_trials)) - done - given_up
        return left - taken, left & taken

    def _point_of(self, trial: FrozenTrial) -> int | None:
        """The grid point of a trial: its grid id, or the point its parameters name."""
        attrs = trial.system_attrs
        if "grid_id" in attrs and self._same_search_space(attrs["search_space"]):
            return int(attrs["grid_id"])
        params = trial.params or attrs.get("fixed_params") or {}
        if not all(name in params for name in self._param_names):
            return None
        return self._grid_index.get(tuple(params[name] for name in self._param_names))

    @functools.cached_property
    def _grid_index(self) -> dict[tuple[Any, ...], int]:
        """Grid id of each point's values (in ``_param_names`` order)."""
        return {tuple(values): i for i, values in enumerate(self._all_grids)}


def sampler_kind(cfg: Mapping[str, Any]) -> str:
    """grid, random, tpe, cmaes, ... from the sampler's class name."""
    target = str(cfg.get("_target_", ""))
    name = target.rsplit(".", 1)[-1].removesuffix("Sampler")
    return {"CmaEs": "cmaes", "TPE": "tpe"}.get(name, name.lower())


def build_sampler(
    cfg: Mapping[str, Any], space: Space, warn: bool = True
) -> optuna.samplers.BaseSampler:
    """The configured sampler; the grid sampler gets its grid from the space."""
    kind = sampler_kind(cfg)
    extra: dict[str, Any] = {}
    if kind == "grid":
        extra["search_space"] = space.grid()
    if kind == "cmaes":
        _refuse_cmaes_restarts(cfg)
    if warn and kind == "cmaes" and not space.numeric_only:
        categorical = [
            p.name
            for p in space.params
            if p.grid_values()
            and isinstance(p.distribution, optuna.distributions.CategoricalDistribution)
        ]
        log.warning(
            "CMA-ES samples numeric parameters only: %s will be sampled independently "
            "(random) by Optuna's fallback",
            ", ".join(categorical),
        )
    return _instantiate(cfg, "sampler", **extra)


def _refuse_cmaes_restarts(cfg: Mapping[str, Any]) -> None:
    """Optuna >= 4.4 ignores restart_strategy and inc_popsize (a FutureWarning, no restarts)."""
    strategy, inc = cfg.get("restart_strategy"), cfg.get("inc_popsize", -1)
    if strategy is None and inc == -1:
        return
    key, value = ("restart_strategy", strategy) if strategy is not None else ("inc_popsize", inc)
    raise UserError(
        f"sampler.{key}={value}: Optuna >= 4.4 dropped CMA-ES restarts (IPOP/BIPOP) from "
        "CmaEsSampler, which would silently run without them: remove it, and for a more "
        "global search raise the population (e.g. sampler.popsize=32) or set sampler.lr_adapt=true"
    )


def trial_sampler(cfg: Mapping[str, Any], space: Space, number: int) -> optuna.samplers.BaseSampler:
    """The sampler for the study's next trial, seeded from (seed, trial number).

    Workers built from the same config would otherwise draw the same random
    start-up points in step (duplicates); seeding by trial number gives every
    trial its own draw, the same one whichever worker runs it, so a random
    study is reproducible in its set of configurations however many workers
    share it. Only samplers whose state lives in the storage are reseeded
    (``SamplerTraits.reseed_per_trial``): the grid sampler's seed shuffles its
    grid, so its grid ids would mean other points under another seed (and the
    study lock already hands each grid point out once).
    """
    if cfg.get("seed") is None:
        return build_sampler(cfg, space, warn=False)
    seed = int(np.random.SeedSequence([int(cfg["seed"]), number]).generate_state(1)[0])
    return build_sampler({**cfg, "seed": seed}, space, warn=False)


# Optuna's caches of a study's search space, kept on its samplers (TPE, CMA-ES, GP, NSGA-II)
SPACE_CACHES = (
    optuna.search_space.IntersectionSearchSpace,
    optuna.search_space._GroupDecomposedSearchSpace,
)


def carry_caches(
    previous: optuna.samplers.BaseSampler, sampler: optuna.samplers.BaseSampler
) -> optuna.samplers.BaseSampler:
    """``sampler`` (the next trial's, from ``trial_sampler``) with the search-space caches of
    ``previous``, the same study's sampler until now.

    Optuna's samplers work out the study's search space incrementally: the cache
    remembers it up to the last finished trial and reads only the trials after it. A
    sampler built afresh for every trial would go through every trial of the study
    again, each trial (TPE: 70 ms a trial at 2,000 trials, benchmarks/scale.py). The
    cache depends on the study's trials only, not on the seed.
    """
    if type(previous) is type(sampler):
        for name, cache in vars(previous).items():
            if isinstance(cache, SPACE_CACHES) and type(getattr(sampler, name, None)) is type(
                cache
            ):
                setattr(sampler, name, cache)
    return sampler


def build_pruner(cfg: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    return _instantiate(cfg, "pruner")


def _instantiate(cfg: Mapping[str, Any], group: str, **extra: Any) -> Any:
    """``cfg`` (the typed config's plain, resolved dict) built with Hydra's ``instantiate``."""
    options = copy.deepcopy(dict(cfg))
    target = str(options.get("_target_", ""))
    options.pop(TRAITS_KEY, None)  # hpo's, not the sampler's
    check_types(options, group)
    try:
        return instantiate(options, **extra)
    except Exception as err:
        cause = str(err.__cause__ or err).splitlines()[0]
        named = [str(k) for k in options if k != "_target_" and str(k) in cause]
        named = [k for k in named if not any(k != other and k in other for other in named)]
        fix = (
            "fix " + " or ".join(f"{group}.{k}" for k in named)
            if named
            else f"fix the {group}.* overrides (--cfg job)"
        )
        raise UserError(
            f"cannot build the {group} {target.rsplit('.', 1)[-1]}: {cause}; {fix}"
        ) from None
