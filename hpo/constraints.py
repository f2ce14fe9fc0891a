"""Study constraints: bounds on fit facts that a trial must meet to be chosen.

A study lists ``constraints:`` (``{name, max, min}``), each a fact the objective
reports about its fit (``FoldOutput.fit_facts``, mean over folds), e.g.
``{name: latency_ms_b1, max: 2.0}``. Each trial's constraint values (fact - max,
min - fact: <= 0 is met, Optuna's convention) are stored with Optuna's own
``Trial.set_constraint`` before the trial is told, so that the samplers that
honour constraints (TPE, NSGA-II, GP: they read ``trial.constraints`` in their
``after_trial`` and when sampling), ``study.best_trial(s)`` and the Pareto plot
all judge a trial by the same numbers. Optuna >= 5 deprecates the samplers'
``constraints_func`` for exactly this.

An infeasible trial is never the study's best: every choice of a winner
(summary, refit model, champion) goes through ``best_trial``.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from hpo import pareto
from hpo.config import Constraint, StudyConfig
from hpo.errors import UserError
from hpo.paths import CONF_DIR


def checked(
    spec: StudyConfig, sampler_kind: str, honoured: bool, declared: Sequence[str]
) -> tuple[Constraint, ...]:
    """The study's constraints, refused in one line before the first trial: a bound missing
    or reversed, a fact named twice or not reported by the objective (``declared``, its
    fit_fact_names; none declared: checked at its first fit), or a sampler that cannot
    honour them (``honoured``: the sampler's ``constraints`` trait)."""
    given = tuple(spec.constraints)
    names = [c.name for c in given]
    for c in given:
        bounds = [b for b in (c.max, c.min) if b is not None]
        if not bounds:
            raise UserError(
                f"study.constraints {c.name} has neither max nor min: give max: N, min: N or both"
            )
        if not all(math.isfinite(b) for b in bounds):
            raise UserError(f"study.constraints {c.name} has a bound that is not a finite number")
        if c.max is not None and c.min is not None and c.max < c.min:
            raise UserError(
                f"study.constraints {c.name} has max {c.max:g} below min {c.min:g}: "
                "swap them, or fix the bounds"
            )
    if len(set(names)) < len(names):
        raise UserError(
            f"study.constraints name a fact twice ({', '.join(names)}): list each once, "
            "with its max and min"
        )
    unknown = [n for n in names if declared and n not in declared]
    if unknown:
        raise UserError(
            f"study.constraints {unknown[0]} is not a fit fact of this objective: "
            f"use one of {', '.join(declared)}"
        )
    if given and not honoured:
        can = ", ".join(f"sampler={k}" for k in samplers_that_honour())
        raise UserError(
            f"sampler={sampler_kind} cannot honour study.constraints: "
            f"use {can or 'another sampler'}"
        )
    return given


def samplers_that_honour() -> list[str]:
    """The shipped sampler configs (conf/sampler/) whose ``hpo.constraints`` trait is true."""
    found = []
    for path in sorted((CONF_DIR / "sampler").glob("*.yaml")):
        node = OmegaConf.load(path)
        traits = node.get("hpo") if isinstance(node, DictConfig) else None
        if traits and traits.get("constraints"):
            found.append(path.stem)
    return found


def describe(constraints: Sequence[Constraint]) -> str:
    """The constraints as a person reads them: ``latency_ms_b1 <= 2, 8 <= model_kb <= 64``."""
    return ", ".join(_bound(c) for c in constraints)


def _bound(c: Constraint) -> str:
    if c.max is not None and c.min is not None:
        return f"{c.min:g} <= {c.name} <= {c.max:g}"
    if c.max is not None:
        return f"{c.name} <= {c.max:g}"
    return f"{c.name} >= {c.min:g}"


def direction(c: Constraint) -> Literal["maximize", "minimize"]:
    """Which way the constrained fact is better (a cap: lower; a floor only: higher)."""
    return "maximize" if c.max is None else "minimize"


def values(
    constraints: Sequence[Constraint], facts: Mapping[str, float], partial: bool = False
) -> dict[str, float] | None:
    """Each constraint's value from the trial's fit facts: how far past its bound (fact - max,
    min - fact, the larger), <= 0 met. None without constraints.

    A fact missing or not finite fails a complete trial (ValueError, its reason the fix); for
    a pruned trial (``partial``) there is then nothing to judge it by: None.
    """
    if not constraints:
        return None
    out: dict[str, float] = {}
    for c in constraints:
        fact = facts.get(c.name)
        if fact is None or not math.isfinite(float(fact)):
            if partial:
                return None
            said = "missing" if fact is None else str(fact)
            raise ValueError(
                f"constraint '{c.name}' is {said} in this trial's fit facts "
                f"({', '.join(sorted(facts)) or 'it reports none'}): fix study.constraints"
            )
        past = [float(fact) - c.max] if c.max is not None else []
        past += [c.min - float(fact)] if c.min is not None else []
        out[c.name] = max(past)
    return out


def met(constraint_values: Mapping[str, float]) -> bool:
    """Optuna's rule: feasible when every constraint value is <= 0."""
    return all(v <= 0.0 for v in constraint_values.values())


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether the trial met the study's constraints (a trial without any: yes)."""
    return met(trial.constraints)


def store(trial: optuna.Trial, constraint_values: Mapping[str, float]) -> None:
    """Optuna's record of the trial's constraints, written before the trial is told (the
    sampler's ``after_trial`` reads them). Safe to repeat: a retried tell after a dropped
    connection finds them set, which Optuna only warns about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The constraint value is ignored")
        for name, value in constraint_values.items():
            trial.set_constraint(name, value)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best feasible complete trial, the one summary, refit model and champion
    take: by the study metric, or with several objectives the (feasible) Pareto front's best
    by the study metric. None when no complete trial met the constraints.

    Optuna's ``best_trial`` and ``best_trials`` leave out trials whose constraints
    (``trial.constraints``) are not met; this is the one place hpo relies on it.
    """
    if len(study.directions) > 1:
        return pareto.best_on_front(study)
    try:
        return study.best_trial
    except ValueError:  # no complete trial, or none feasible
        return None


@dataclass(frozen=True)
class Tally:
    """How the complete trials fared against the constraints."""

    judged: int  # complete trials with constraint values
    infeasible: int
    most_failed: str = ""  # the constraint most trials missed
    most_failed_count: int = 0


def tally(study: optuna.Study) -> Tally:
    """Count the complete trials that missed a constraint, and the constraint missed most."""
    judged = [
        t.constraints
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.constraints
    ]
    missed = Counter(name for c in judged for name, v in c.items() if v > 0.0)
    infeasible = sum(1 for c in judged if not met(c))
    if not missed:
        return Tally(len(judged), infeasible)
    name, count = missed.most_common(1)[0]
    return Tally(len(judged), infeasible, name, count)
