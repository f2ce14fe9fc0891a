"""The winner's complexity knob (by importance, else by name) and the values to try along it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo.evaluation.curves.curve import COMPLEXITY, PER_LAYER_WIDTH
from hpo.space import Param, parse_space

SPACED = 6  # values spread along a knob's range; with the winner's own, 6 or 7 in all
WINDOW = 7  # the most categorical choices around the winner's


def sign(knob: str) -> int:
    """+1 when a larger ``knob`` fits more closely, -1 when it regularizes; +1 if unknown."""
    return COMPLEXITY.get("width" if PER_LAYER_WIDTH.fullmatch(knob) else knob, 1)


def complexity_knob(
    space_params: Mapping[str, Any], importances: Mapping[str, float] | None
) -> str | None:
    """The most important numeric complexity knob of the space, or None if it has none.

    ``space_params``: name -> a space entry (an Optuna distribution, a ``Param`` or the
    study YAML's mapping); pass only the winner's parameters when the space has
    conditional ones. Ties, and no importances, fall back to ``COMPLEXITY``'s order:
    structure (depth, rounds, width) before regularization.
    """
    order = list(COMPLEXITY)

    def rank(name: str) -> int:
        return order.index("width" if PER_LAYER_WIDTH.fullmatch(name) else name)

    knobs = sorted(
        (n for n in space_params if _is_complexity(n) and _numeric(space_params[n])), key=rank
    )
    if not knobs:
        return None
    weights = importances or {}
    return max(knobs, key=lambda n: weights.get(n, 0.0))  # the first of equals wins


def _is_complexity(name: str) -> bool:
    return name in COMPLEXITY or PER_LAYER_WIDTH.fullmatch(name) is not None


def _numeric(entry: Any) -> bool:
    d = distribution(entry)
    if isinstance(d, CategoricalDistribution):
        return all(_number(c) for c in d.choices)
    return isinstance(d, IntDistribution | FloatDistribution)


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def distribution(entry: BaseDistribution | Param | Mapping[str, Any]) -> BaseDistribution:
    """The Optuna distribution of a space entry, in any of the forms the study has it."""
    if isinstance(entry, Param):
        return entry.distribution
    if isinstance(entry, BaseDistribution):
        return entry
    keys = ("type", "low", "high", "step", "log", "choices")  # `when` names other parameters
    return parse_space({"knob": {k: entry[k] for k in keys if k in entry}}).params[0].distribution


def knob_values(
    space_entry: BaseDistribution | Param | Mapping[str, Any], best_value: float
) -> list[float]:
    """5-7 values of a knob for its validation curve: spread along its whole range (in
    log steps on a log range) so that both ends, under- and over-fitting, show, plus
    the winner's value. A small int range gives all its values; a numeric categorical
    the (at most 7) choices around the winner's."""
    d = distribution(space_entry)
    if isinstance(d, CategoricalDistribution):
        if not all(_number(c) for c in d.choices):
            raise ValueError(f"a validation curve needs numeric choices, not {list(d.choices)}")
        choices = sorted({*(c for c in d.choices if _number(c)), best_value})
        i = choices.index(best_value)
        start = max(0, min(i - WINDOW // 2, len(choices) - WINDOW))
        return choices[start : start + WINDOW]
    best: float
    spread: list[Any]
    if isinstance(d, IntDistribution):
        best, spread = int(best_value), _int_values(d)
    else:
        assert isinstance(d, FloatDistribution)
        best, spread = float(best_value), _float_values(d)
    return sorted({*_apart(spread, best, d.log), best})


def _apart(points: list[Any], best: float, log: bool) -> list[Any]:
    """The spread points without the inner ones within a quarter step of the winner's
    (0.5, 1.0, 1.05, 2.19: a fit spent on a point the winner's already shows)."""
    scale = np.log if log and min(*points, best) > 0 else (lambda x: x)
    quarter = (scale(points[-1]) - scale(points[0])) / (len(points) - 1) / 4
    inner = points[1:-1]
    kept = [p for p in inner if p == best or abs(scale(p) - scale(best)) >= quarter]
    return [points[0], *kept, points[-1]]


def _spread(low: float, high: float, log: bool) -> np.ndarray:
    return np.geomspace(low, high, SPACED) if log else np.linspace(low, high, SPACED)


def _int_values(d: IntDistribution) -> list[int]:
    if (d.high - d.low) // d.step + 1 <= WINDOW:
        return list(range(d.low, d.high + 1, d.step))
    steps = (_spread(d.low, d.high, d.log) - d.low) / d.step
    return [d.low + d.step * math.floor(s + 0.5) for s in steps]


def _float_values(d: FloatDistribution) -> list[float]:
    points = _spread(d.low, d.high, d.log)
    if d.step is not None:
        snapped = d.low + d.step * np.round((points - d.low) / d.step)
        return [float(v) for v in np.clip(snapped, d.low, d.high)]
    return [min(max(float(f"{p:.3g}"), d.low), d.high) for p in points]  # readable, in range
