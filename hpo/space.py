"""The search space: parsed and checked from the study YAML, then sampled per trial.

Each parameter is ``{type: int|float|categorical, ...}``:

    max_depth:     {type: int, low: 2, high: 10}                 # step: 2 also allowed
    learning_rate: {type: float, low: 0.01, high: 0.3, log: true, grid: [0.03, 0.1]}
    booster:       {type: categorical, choices: [gbtree, dart]}
    rate_drop:     {type: float, low: 0.0, high: 0.5, when: {booster: dart}}

``grid`` lists the values the grid sampler tries; int ranges, float ranges
with a ``step`` and categorical choices enumerate themselves. ``when`` makes a
parameter conditional (define-by-run): it is sampled only when the named
parameters, declared before it, have the given value (or one of a list).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from hpo.errors import UserError

TYPES = ("int", "float", "categorical")
KEYS = {"type", "low", "high", "step", "log", "choices", "grid", "when"}
GRID_LIMIT = 100_000


@dataclass(frozen=True)
class Param:
    name: str
    distribution: BaseDistribution
    grid: tuple[Any, ...] | None = None
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def grid_values(self) -> tuple[Any, ...] | None:
        """The values the grid sampler tries, or None for a continuous range without any."""
        if self.grid is not None:
            return self.grid
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return tuple(d.choices)
        if isinstance(d, IntDistribution) and not d.log:
            return tuple(range(d.low, d.high + 1, d.step))
        if isinstance(d, FloatDistribution) and d.step is not None:
            return tuple(float(v) for v in np.arange(d.low, d.high + d.step / 2, d.step))
        return None

    def active(self, params: Mapping[str, Any]) -> bool:
        return all(params.get(k) in allowed for k, allowed in self.when.items())


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample every active parameter, in declaration order (define-by-run)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.active(values):
                values[p.name] = _suggest(trial, p)
        return values

    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.name: p.distribution for p in self.params}

    @property
    def numeric_only(self) -> bool:
        return not any(isinstance(p.distribution, CategoricalDistribution) for p in self.params)

    def grid(self) -> dict[str, list[Any]]:
        """The grid for Optuna's GridSampler; refuses parameters that cannot be enumerated."""
        grid: dict[str, list[Any]] = {}
        for p in self.params:
            if p.when:
                raise UserError(
                    f"parameter '{p.name}' is conditional and the grid sampler needs "
                    "a fixed space: remove its `when` or use sampler=tpe"
                )
            values = p.grid_values()
            if values is None:
                raise UserError(
                    f"parameter '{p.name}' is a continuous range the grid sampler "
                    f"cannot enumerate: add study.space.{p.name}.grid=[...] or a step"
                )
            _check_grid(p, tuple(values))
            grid[p.name] = list(values)
        return grid

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def fingerprint(self) -> str:
        """A canonical JSON of the distributions, to refuse resuming with another space."""
        return json.dumps(
            {p.name: json.loads(distribution_to_json(p.distribution)) for p in self.params},
            sort_keys=True,
        )


def _suggest(trial: optuna.Trial, p: Param) -> Any:
    d = p.distribution
    if isinstance(d, IntDistribution):
        return trial.suggest_int(p.name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(p.name, d.low, d.high, step=d.step, log=d.log)
    assert isinstance(d, CategoricalDistribution)
    return trial.suggest_categorical(p.name, d.choices)


def parse_space(raw: Mapping[str, Any]) -> Space:
    """Check every parameter of a study's ``space`` and build its distribution."""
    if not raw:
        raise UserError("the study has an empty search space: add parameters under study.space")
    params: list[Param] = []
    for name, spec in raw.items():
        params.append(_parse_param(str(name), spec, {p.name for p in params}))
    return Space(tuple(params))


def _parse_param(name: str, spec: Any, earlier: set[str]) -> Param:
    where = f"study.space.{name}"
    if not isinstance(spec, Mapping):
        raise UserError(f"{where} must be a mapping like {{type: float, low: 0.1, high: 1.0}}")
    unknown = set(spec) - KEYS
    if unknown:
        raise UserError(
            f"{where} has unknown key(s) {', '.join(sorted(unknown))}: "
            f"use {', '.join(sorted(KEYS))}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise UserError(f"{where}.type is {kind!r}: use one of {', '.join(TYPES)}")
    try:
        distribution = _distribution(kind, spec)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"{where} is not a valid {kind} range ({err}): fix low/high/step/log"
        ) from None
    grid = _grid(where, spec.get("grid"), distribution)
    when = _when(where, spec.get("when"), earlier)
    return Param(name, distribution, grid, when)


def _distribution(kind: str, spec: Mapping[str, Any]) -> BaseDistribution:
    if kind == "categorical":
        choices = spec.get("choices")
        if not choices:
            raise ValueError("choices must be a non-empty list")
        return CategoricalDistribution([_plain(c) for c in choices])
    if "low" not in spec or "high" not in spec:
        raise ValueError("low and high are required")
    log = bool(spec.get("log", False))
    step = spec.get("step")
    if kind == "int":
        return IntDistribution(
            int(spec["low"]), int(spec["high"]), log=log, step=int(step) if step is not None else 1
        )
    return FloatDistribution(
        float(spec["low"]),
        float(spec["high"]),
        log=log,
        step=float(step) if step is not None else None,
    )


def _grid(where: str, values: Any, distribution: BaseDistribution) -> tuple[Any, ...] | None:
    if values is None:
        return None
    if not isinstance(values, list | tuple) or not values:
        raise UserError(f"{where}.grid must be a non-empty list of values")
    return tuple(_plain(v) for v in values)


def _check_grid(p: Param, values: tuple[Any, ...]) -> None:
    """Grid values inside the range: checked only when the grid sampler will use them, so
    that narrowing a range under another sampler (``study.space.max_depth.high=4``) works."""
    d = p.distribution
    for v in values:
        if isinstance(d, CategoricalDistribution):
            inside = v in d.choices
        else:
            inside = d._contains(d.to_internal_repr(v))
        if not inside:
            raise UserError(
                f"study.space.{p.name}.grid value {v!r} lies outside the parameter's range: "
                "fix the grid or widen low/high"
            )


def _when(where: str, raw: Any, earlier: set[str]) -> dict[str, tuple[Any, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}.when must map a parameter to a value, e.g. {{booster: dart}}")
    when: dict[str, tuple[Any, ...]] = {}
    for key, allowed in raw.items():
        if key not in earlier:
            raise UserError(
                f"{where}.when names '{key}', which is not a parameter declared "
                "before it: declare it earlier in study.space"
            )
        when[str(key)] = tuple(allowed) if isinstance(allowed, list | tuple) else (allowed,)
    return when


def _plain(value: Any) -> Any:
    """OmegaConf containers and numpy scalars to plain Python values Optuna can store."""
    if isinstance(value, np.generic):
        return value.item()
    return value
