"""make_plan: every shipped study passes the checks made before the first trial."""

from __future__ import annotations

import logging

import pytest

from hpo import constraints
from hpo.errors import UserError
from hpo.runner import make_plan
from tests.hpo.runner.helpers import SHIPPED


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe", "cmaes"])
@pytest.mark.parametrize("study_name", SHIPPED)
def test_every_shipped_study_plans_under_each_sampler(make_cfg, study_name, sampler) -> None:
    """Its space, objective settings and budget pass every check made before the first trial."""
    cfg = make_cfg(f"study={study_name}", f"sampler={sampler}")
    if sampler == "cmaes" and cfg.study.objectives:
        with pytest.raises(UserError, match="sampler=cmaes optimizes one objective"):
            make_plan(cfg)
        return
    if cfg.study.constraints and sampler not in constraints.samplers_that_honour():
        with pytest.raises(UserError, match=f"sampler={sampler} cannot honour study.constraints"):
            make_plan(cfg)
        return
    conditional = [name for name, spec in cfg.study.space.items() if "when" in spec]
    if sampler == "grid" and conditional:  # a grid needs a fixed space: refused, naming it
        with pytest.raises(UserError, match=f"parameter '{conditional[0]}' is conditional"):
            make_plan(cfg)
        return
    plan = make_plan(cfg)
    assert plan.sampler_kind == sampler
    assert plan.budget is not None and plan.budget >= 1
    if sampler == "grid":
        assert plan.budget <= plan.space.grid_size()


@pytest.mark.parametrize(
    ("study", "metric", "direction"),
    [
        ("xgb_f1", "log_loss", "minimize"),
        ("xgb_rmse", "r2", "maximize"),
        ("mlp_f1", "f1", "maximize"),
    ],
)
def test_an_overridden_metric_brings_its_own_direction(
    make_cfg, caplog, study: str, metric: str, direction: str
) -> None:
    """``study.metric=log_loss`` on an F1 study minimizes: the study file states no direction."""
    with caplog.at_level(logging.WARNING, logger="hpo.runner.plan"):
        plan = make_plan(make_cfg(f"study={study}", f"study.metric={metric}"))
    assert plan.direction == direction
    assert not caplog.records


def test_a_stated_direction_against_the_metric_is_kept_and_warned_of_in_one_line(
    make_cfg, caplog
) -> None:
    with caplog.at_level(logging.WARNING, logger="hpo.runner.plan"):
        plan = make_plan(
            make_cfg("study=xgb_f1", "study.metric=log_loss", "study.direction=maximize")
        )
    assert plan.direction == "maximize"
    [record] = caplog.records
    assert "log_loss is better when lower" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_a_shipped_study_states_no_direction_of_its_own(make_cfg) -> None:
    """Else overriding its metric would keep the old metric's direction."""
    for study in SHIPPED:
        assert make_cfg(f"study={study}").study.direction is None, study


def test_a_narrowed_range_is_accepted_under_a_sampler_that_ignores_the_grid(make_cfg) -> None:
    """xgb_f1's max_depth grid holds 6: only the grid sampler must refuse high=4."""
    plan = make_plan(make_cfg("study=xgb_f1", "study.space.max_depth.high=4", "sampler=random"))
    assert plan.space.params[0].distribution.high == 4  # type: ignore[attr-defined]
    with pytest.raises(UserError, match=r"max_depth\.grid value 6 lies outside"):
        make_plan(make_cfg("study=xgb_f1", "study.space.max_depth.high=4", "sampler=grid"))


def test_a_further_objective_the_objective_never_reports_is_refused_before_any_trial(
    make_cfg,
) -> None:
    cfg = make_cfg("study=lora_intents_pareto", "study.objectives.0.name=trainable_parms")
    with pytest.raises(UserError, match=r"trainable_parms is not a fit fact .*trainable_params"):
        make_plan(cfg)
