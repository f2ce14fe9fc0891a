"""Multi-objective studies: the study metric plus fit facts as further objectives.

A study lists further objectives under ``objectives:`` (``{name, direction}``),
each a fact the objective reports about its fit (``FoldOutput.fit_facts``, mean
over folds), e.g. ``trainable_params`` of the LoRA objective. The Optuna
study then has several directions and its result is a Pareto front; the
"best" trial (summary, refit model) is the front's best by the study metric.

CMA-ES samples for one objective only: that is settled here, up front.
Optuna cannot prune multi-objective trials (``Trial.report`` refuses): the
pruner is turned off by ``hpo.pruning.without_pruning``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.config import ExtraObjective, StudyConfig
from hpo.errors import UserError


def extra_objectives(
    spec: StudyConfig, sampler_kind: str, multi_objective: bool
) -> tuple[ExtraObjective, ...]:
    """The study's further objectives, checked: directions, names, and a sampler that can
    (``multi_objective``, the sampler's trait from its YAML)."""
    extra = tuple(spec.objectives)
    names = [spec.metric, *(o.name for o in extra)]
    for objective in extra:
        if objective.direction not in ("maximize", "minimize"):
            raise UserError(
                f"study.objectives {objective.name} has direction '{objective.direction}': "
                "use maximize or minimize"
            )
    if len(set(names)) < len(names):
        raise UserError(f"study.objectives repeat a name ({', '.join(names)}): list each once")
    if extra and not multi_objective:
        raise UserError(
            f"sampler={sampler_kind} optimizes one objective and this study has {len(names)}: "
            "use sampler=nsga2 or sampler=tpe (multi-objective TPE)"
        )
    return extra


def refuse_unknown_facts(extra: Sequence[ExtraObjective], declared: Sequence[str]) -> None:
    """A further objective the objective never reports is refused before the first trial
    (else every trial would fail on it); an objective that declares no names is checked at
    its first fit."""
    if not declared:
        return
    for objective in extra:
        if objective.name not in declared:
            raise UserError(
                f"study.objectives {objective.name} is not a fit fact of this objective: "
                f"use one of {', '.join(declared)}"
            )


def values(value: float, info: dict[str, float], extra: Sequence[ExtraObjective]) -> list[float]:
    """The trial's values: the study metric, then each further objective from the fit facts."""
    out = [value]
    for objective in extra:
        if objective.name not in info:
            raise ValueError(
                f"objective '{objective.name}' is not a fit fact of this objective "
                f"({', '.join(sorted(info)) or 'it reports none'}): fix study.objectives"
            )
        out.append(float(info[objective.name]))
        if not math.isfinite(out[-1]):
            raise ValueError(f"objective '{objective.name}' is {out[-1]}")
    return out


def best_on_front(study: optuna.Study) -> FrozenTrial | None:
    """The Pareto front's best trial by the first objective (the study metric); None with no
    front (no complete trial, or none met the constraints: Optuna's front leaves those out).
    Take the study's winner from ``hpo.constraints.best_trial``."""
    first = study.directions[0]
    front = study.best_trials
    if not front:
        return None
    pick = max if first == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(front, key=lambda t: t.values[0])


def plots(metric: str, extra: Sequence[str], direction: str) -> dict[str, Callable[[Any], Any]]:
    """The usual plots, of the study metric (the first objective), and the Pareto front."""
    v = optuna.visualization
    first: dict[str, Any] = {"target": lambda t: t.values[0], "target_name": metric}
    # importances are for low target values: a maximized metric is negated
    sign = -1.0 if direction == "maximize" else 1.0
    low: dict[str, Any] = {"target": lambda t: sign * t.values[0], "target_name": metric}

    def importances(study: optuna.Study) -> Any:
        with warnings.catch_warnings():  # PED-ANOVA's reminder that low is taken as good
            warnings.simplefilter("ignore", UserWarning)
            return v.plot_param_importances(study, **low)

    return {
        "optimization_history": lambda s: v.plot_optimization_history(s, **first),
        "param_importances": importances,
        "parallel_coordinate": lambda s: v.plot_parallel_coordinate(s, **first),
        "slice": lambda s: v.plot_slice(s, **first),
        "pareto_front": lambda s: v.plot_pareto_front(s, target_names=[metric, *extra]),
    }
