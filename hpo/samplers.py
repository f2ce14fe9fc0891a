"""Samplers and pruners from their Hydra configs, checked against the search space."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import optuna
from hydra.utils import instantiate
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
    try:
        return instantiate(cfg, **extra)
    except Exception as err:
        cause = err.__cause__ or err
        raise UserError(
            f"cannot build the {group} {OmegaConf.to_container(cfg)}: "
            f"{str(cause).splitlines()[0]}; fix the {group}.* overrides"
        ) from None
