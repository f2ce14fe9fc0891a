"""Warm start (hpo/schedule/warm_start.py): last night's best parameters are tried first."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hpo.schedule import run_scheduled
from hpo.schedule.warm_start import misfit
from hpo.space import parse_space
from tests.hpo.schedule.helpers import NIGHTS, Nights, compose_cfg, write_data


@pytest.mark.slow
def test_night_two_starts_with_night_ones_best_parameters(nights: Nights) -> None:
    first = nights.study(NIGHTS[0])
    second = nights.study(NIGHTS[1])
    assert second.trials[0].params == first.best_params == {"x": 0.5}
    assert second.trials[0].user_attrs["warm_start"].startswith(f"{nights.base}-{NIGHTS[0]}#")
    assert second.trials[0].value == pytest.approx(first.best_value)
    assert len(second.trials) == 3, "the warm-start trial counts in the budget"
    assert nights.parent(NIGHTS[1]).data.tags["hpo.warm_start"].startswith("1 parameter sets")


@pytest.mark.slow
def test_warm_start_skips_parameters_that_do_not_fit_naming_them(nights: Nights) -> None:
    third = nights.study(NIGHTS[2])
    assert all(t.params["x"] >= 0.7 for t in third.trials)
    skipped = third.user_attrs["warm_start"]["skipped"]
    assert len(skipped) == 2, "night 2's two best, both below 0.7"
    assert all("parameter 'x'" in reason and "[0.7, 1.0]" in reason for reason in skipped.values())
    assert sum("warm start: skipped" in w and "parameter 'x'" in w for w in nights.warnings) == 2


@pytest.mark.slow
def test_a_multi_objective_night_warm_starts_from_the_last_nights_front(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """A Pareto study (study.objectives) runs nightly: tonight's study gets every direction."""
    found = Nights(f"pareto_{uuid.uuid4().hex[:8]}", str(tmp_path / "optuna.journal"), mlflow_uri)
    write_data(tmp_path / "data.csv")
    pareto = ("+study.objectives=[{name: calls, direction: minimize}]", "schedule.warm_start=2")
    for night, budget in zip(NIGHTS[:2], (3, 3), strict=True):
        run_scheduled(compose_cfg(found, night, f"study.n_trials={budget}", *pareto))
    first, second = found.study(NIGHTS[0]), found.study(NIGHTS[1])
    assert [d.name for d in second.directions] == ["MINIMIZE", "MINIMIZE"]
    warmed = [t for t in second.trials if "warm_start" in t.user_attrs]
    assert len(warmed) == 2
    front = sorted(first.best_trials, key=lambda t: t.values[0])
    assert warmed[0].params == front[0].params, "the front's best by the study metric first"


def test_misfit_names_the_parameter() -> None:
    space = parse_space(
        {
            "depth": {"type": "int", "low": 2, "high": 6},
            "booster": {"type": "categorical", "choices": ["gbtree"]},
        }
    )
    assert misfit({"depth": 3, "booster": "gbtree"}, space) is None
    assert misfit({"depth": 3}, space) is None, "a parameter new tonight is sampled"
    assert "parameter 'depth' = 9 is outside tonight's range [2, 6]" in str(
        misfit({"depth": 9}, space)
    )
    assert "parameter 'booster' = 'dart'" in str(misfit({"booster": "dart"}, space))
    assert "parameter 'eta' is not in tonight's search space" in str(misfit({"eta": 0.1}, space))
