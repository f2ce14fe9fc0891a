"""Samplers and pruners from their Hydra configs, checked against the search space."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import optuna
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from hpo.errors import UserError
from hpo.space import Space

log = logging.getLogger(__name__)
RESEEDED = ("random", "tpe", "cmaes")  # samplers drawn afresh per trial (trial_sampler)


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, without its call to ``study.stop()`` once the grid is covered.

    hpo runs its own ask/tell loop and caps a grid study's budget at the grid
    size; Optuna's stop() raises outside ``optimize``.
    """

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        return None


def sampler_kind(cfg: DictConfig) -> str:
    """grid, random, tpe, cmaes, ... from the sampler's class name."""
    target = str(cfg.get("_target_", ""))
    name = target.rsplit(".", 1)[-1].removesuffix("Sampler")
    return {"CmaEs": "cmaes", "TPE": "tpe"}.get(name, name.lower())


def build_sampler(cfg: DictConfig, space: Space, warn: bool = True) -> optuna.samplers.BaseSampler:
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


def _refuse_cmaes_restarts(cfg: DictConfig) -> None:
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


def trial_sampler(cfg: DictConfig, space: Space, number: int) -> optuna.samplers.BaseSampler:
    """The sampler for the study's next trial, seeded from (seed, trial number).

    Workers built from the same config would otherwise draw the same random
    start-up points in step (duplicates); seeding by trial number gives every
    trial its own draw, the same one whichever worker runs it, so a random
    study is reproducible in its set of configurations however many workers
    share it. Only samplers whose state lives in the storage are reseeded
    (RESEEDED): the grid sampler's seed shuffles its grid, so its grid ids
    would mean other points under another seed (and the study lock already
    hands each grid point out once).
    """
    if cfg.get("seed") is None:
        return build_sampler(cfg, space, warn=False)
    seed = int(np.random.SeedSequence([int(cfg.seed), number]).generate_state(1)[0])
    seeded = OmegaConf.merge(cfg, {"seed": seed})
    assert isinstance(seeded, DictConfig)
    return build_sampler(seeded, space, warn=False)


def build_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    return _instantiate(cfg, "pruner")


def _instantiate(cfg: DictConfig, group: str, **extra: Any) -> Any:
    options = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(options, dict)
    target = str(options.get("_target_", ""))
    _check_types(options, group)
    try:
        return instantiate(cfg, **extra)
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


SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
}
TYPE_NAMES = {"int": "a whole number", "float": "a number", "bool": "true or false"}


def _check_types(options: dict[Any, Any], group: str) -> None:
    """Refuse an option whose value is not of the type the constructor declares.

    Optuna's constructors take ``n_startup_trials='abc'`` without a word, and
    every trial then fails on it; annotations naming only int, float, bool, str
    and None are checked here, others (callables, samplers) are left to Optuna.
    """
    try:
        parameters = inspect.signature(get_class(str(options.get("_target_")))).parameters
    except Exception:
        return  # no such class: instantiate names it
    for key, value in options.items():
        if key not in parameters:
            continue  # instantiate refuses an unknown option by name
        annotation = parameters[key].annotation
        if isinstance(annotation, type):
            annotation = annotation.__name__
        if not isinstance(annotation, str):
            continue
        names = [part.strip() for part in annotation.split("|")]
        if not all(name in SIMPLE_TYPES for name in names):
            continue
        allowed = tuple(t for name in names for t in SIMPLE_TYPES[name])
        if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
            continue
        wanted = " or ".join(
            TYPE_NAMES.get(name, "null" if name == "None" else f"a {name}") for name in names
        )
        raise UserError(
            f"{group}.{key}={value!r} is not {wanted}: set {group}.{key} to {wanted} "
            f"(see --cfg job for the {group}'s options)"
        )
