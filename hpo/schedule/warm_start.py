"""Warm start: the previous night's best parameter sets are tried first tonight.

They are Optuna trials enqueued before the loop (``Study.enqueue_trial``), so
they count in the budget, run with tonight's data and folds, and are logged
like any trial. A set that no longer fits tonight's space (a parameter
removed, a value outside a narrowed range, a choice dropped) is skipped with
a warning naming the parameter; a parameter new tonight is sampled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo.constraints import is_feasible
from hpo.names import METRIC_ATTR
from hpo.runner import Plan
from hpo.schedule.names import nights
from hpo.space import Space
from hpo.storages import study_lock

log = logging.getLogger(__name__)
ATTR = "warm_start"  # on tonight's study: where its first trials came from


@dataclass
class WarmStart:
    source: str | None = None  # the previous night's study
    enqueued: list[int] = field(default_factory=list)  # its trial numbers, enqueued tonight
    skipped: dict[int, str] = field(default_factory=dict)  # its trial number -> why

    def line(self) -> str:
        if self.source is None:
            return "none (no earlier night with a completed trial)"
        line = f"{len(self.enqueued)} parameter sets from {self.source}"
        if self.skipped:
            line += f", {len(self.skipped)} skipped (did not fit tonight's space)"
        return line


def warm_start(
    storage: optuna.storages.BaseStorage, plan: Plan, base: str, night: str, k: int
) -> WarmStart:
    """Create tonight's study and enqueue the previous night's top ``k``, once per night.

    A rerun of the same night finds the ``warm_start`` attribute and adds
    nothing (and ``skip_if_exists`` guards the step in between).
    """
    name = plan.spec.name
    with study_lock(storage, name):
        study = optuna.create_study(
            storage=storage, study_name=name, directions=plan.directions, load_if_exists=True
        )
        if ATTR in study.user_attrs:
            done = study.user_attrs[ATTR]
            skipped = {int(k): v for k, v in done.get("skipped", {}).items()}
            return WarmStart(done.get("source"), done.get("enqueued", []), skipped)
        result = WarmStart()
        if plan.sampler_kind == "grid":  # the grid visits every point anyway
            k = 0
        previous = _previous(storage, base, night, plan) if k > 0 else None
        if previous is not None:
            result.source = previous.study_name
            for trial in top(previous, k):
                reason = misfit(trial.params, plan.space)
                if reason:
                    result.skipped[trial.number] = reason
                    log.warning(
                        "warm start: skipped trial %d of %s: %s",
                        trial.number,
                        previous.study_name,
                        reason,
                    )
                    continue
                study.enqueue_trial(
                    dict(trial.params),
                    user_attrs={ATTR: f"{previous.study_name}#{trial.number}"},
                    skip_if_exists=True,
                )
                result.enqueued.append(trial.number)
        if plan.budget is not None and len(result.enqueued) >= plan.budget:
            log.warning(
                "warm start: %d parameter sets fill the budget of %d trials, so no new "
                "parameters are tried tonight: lower schedule.warm_start",
                len(result.enqueued),
                plan.budget,
            )
        reasons = {str(k): v for k, v in result.skipped.items()}
        study.set_user_attr(
            ATTR, {"source": result.source, "enqueued": result.enqueued, "skipped": reasons}
        )
    return result


def _previous(
    storage: optuna.storages.BaseStorage, base: str, night: str, plan: Plan
) -> optuna.Study | None:
    """The latest earlier night with a completed trial, for the same metric and directions."""
    earlier = [n for d, n in nights(optuna.get_all_study_names(storage), base).items() if d < night]
    for name in reversed(earlier):
        study = optuna.load_study(study_name=name, storage=storage)
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            continue
        metric = study.user_attrs.get(METRIC_ATTR)
        directions = [d.name.lower() for d in study.directions]
        if directions != plan.directions or metric != plan.spec.metric:
            log.warning(
                "warm start: none, %s optimized %s (%s), tonight is %s (%s)",
                name,
                metric,
                ", ".join(directions),
                plan.spec.metric,
                ", ".join(plan.directions),
            )
            return None
        return study
    return None


def top(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The ``k`` best completed trials with distinct parameters, best first.

    Best by the study metric (the first objective); in a multi-objective study
    the Pareto front's trials come first, so a front is carried over whole. Only
    feasible trials (study.constraints): an infeasible one was never a candidate.
    """
    complete = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)
    ]
    reverse = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    ranked = sorted(complete, key=lambda t: t.values[0], reverse=reverse)
    ranked.sort(key=lambda t: t.number not in front)  # stable: the front first, each by metric
    chosen: list[FrozenTrial] = []
    seen: set[str] = set()
    for trial in ranked:
        key = repr(sorted(trial.params.items()))
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
        if len(chosen) == k:
            break
    return chosen


def misfit(params: Mapping[str, Any], space: Space) -> str | None:
    """Why ``params`` cannot be a trial of ``space``, naming the parameter; None if they fit."""
    declared = {p.name: p for p in space.params}
    for name in params:
        if name not in declared:
            return f"parameter '{name}' is not in tonight's search space"
    for p in space.params:
        if p.name not in params:
            continue  # new tonight, or inactive: sampled or skipped as usual
        value, d = params[p.name], p.distribution
        if not p.active(params):
            return f"parameter '{p.name}' is inactive tonight (its `when` condition is not met)"
        if isinstance(d, CategoricalDistribution):
            if value not in d.choices:
                choices = list(d.choices)
                return f"parameter '{p.name}' = {value!r} is not one of tonight's choices {choices}"
        elif not _inside(d, value):
            return f"parameter '{p.name}' = {value!r} is outside tonight's range {_range(d)}"
    return None


def _inside(d: Any, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return bool(d._contains(d.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False


def _range(d: Any) -> str:
    step = f", step {d.step}" if getattr(d, "step", None) not in (None, 1) else ""
    log_scale = ", log" if getattr(d, "log", False) else ""
    return f"[{d.low}, {d.high}{step}{log_scale}]"
