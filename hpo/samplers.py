"""Samplers and pruners from their Hydra configs, checked against the search space."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hpo.errors import UserError
from hpo.space import Space

log = logging.getLogger(__name__)


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


def build_sampler(cfg: DictConfig, space: Space) -> optuna.samplers.BaseSampler:
    """The configured sampler; the grid sampler gets its grid from the space."""
    kind = sampler_kind(cfg)
    extra: dict[str, Any] = {}
    if kind == "grid":
        extra["search_space"] = space.grid()
    if kind == "cmaes" and not space.numeric_only:
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
