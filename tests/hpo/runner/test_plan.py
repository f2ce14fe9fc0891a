"""make_plan: every shipped study passes the checks made before the first trial."""

from __future__ import annotations

import pytest

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
    plan = make_plan(cfg)
    assert plan.sampler_kind == sampler
    assert plan.budget is not None and plan.budget >= 1
    if sampler == "grid":
        assert plan.budget <= plan.space.grid_size()
