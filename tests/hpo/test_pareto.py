"""Multi-objective studies in the core runner, on the cheap prior objective (hpo/pareto.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from hpo import pareto
from hpo.check import check, open_check
from hpo.config import ExtraObjective
from hpo.errors import UserError
from hpo.runner import make_plan, run
from hpo.storages import open_storage
from tests.hpo.runner.helpers import load, runs

# PriorObjective reports the fit fact "calls" (1 per fold): a second objective to minimize.
PARETO = ["study=tiny_prior", "pruner=none", "study.objectives=[{name:calls,direction:minimize}]"]


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random"])
def test_a_two_objective_study_tells_both_values_and_logs_the_front(make_cfg, sampler) -> None:
    cfg = make_cfg(*PARETO, f"sampler={sampler}", "study.n_trials=3")
    summary = run(cfg)

    study = load(cfg)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert [len(t.values) for t in study.trials] == [2, 2, 2]
    assert all(t.values[1] == 1.0 for t in study.trials)
    front = {t.number for t in study.best_trials}
    assert {row["trial"] for row in summary.front} == front
    assert summary.best_number in front
    assert "Pareto front" in summary.text()

    parent, children = runs(cfg)
    assert set(parent.data.tags["hpo.pareto_front"].split(",")) == {str(n) for n in front}
    assert parent.data.tags["hpo.model_trial"] == str(summary.best_number)
    assert parent.data.tags["hpo.objectives"] == "calls minimize"
    page = MlflowClient(cfg.tracking.uri).download_artifacts(parent.info.run_id, "report.html")
    text = Path(page).read_text()
    assert "Pareto-front Plot" in text and "Optimization History Plot" in text
    assert all(c.data.metrics["calls"] == 1.0 for c in children)


def test_cmaes_is_refused_up_front_for_several_objectives(make_cfg) -> None:
    cfg = make_cfg(*PARETO, "sampler=cmaes")
    with pytest.raises(UserError, match=r"sampler=cmaes optimizes one objective.*sampler=nsga2"):
        make_plan(cfg)


def test_pruning_is_turned_off_with_one_warning(make_cfg, caplog) -> None:
    cfg = make_cfg(*PARETO[:1], "pruner=median", *PARETO[2:])
    with caplog.at_level(logging.WARNING, logger="hpo.pareto"):
        plan = make_plan(cfg)
    assert isinstance(plan.pruner, optuna.pruners.NopPruner)
    assert [r.getMessage() for r in caplog.records] == [
        "multi-objective studies cannot be pruned (Optuna): MedianPruner is not used; "
        "pass pruner=none to silence this"
    ]


def test_an_objective_that_is_no_fit_fact_is_refused_before_any_trial(make_cfg) -> None:
    """Not after every trial has failed on it: the objective declares its fit facts."""
    cfg = make_cfg(
        "study=tiny_prior",
        "pruner=none",
        "study.objectives=[{name:latency,direction:minimize}]",
        "study.n_trials=1",
    )
    with pytest.raises(
        UserError, match="latency is not a fit fact of this objective: use one of calls"
    ):
        run(cfg)
    assert cfg.study.name not in optuna.get_all_study_names(open_storage(cfg.storage))


def test_an_undeclared_fit_fact_fails_the_trial_with_the_fix() -> None:
    """An objective that declares no fit facts is checked at its first fit."""
    with pytest.raises(ValueError, match=r"'latency' is not a fit fact .*\(calls\): fix study"):
        pareto.values(0.5, {"calls": 1.0}, [ExtraObjective("latency", "minimize")])


def test_resuming_with_other_objectives_is_refused(make_cfg) -> None:
    first = make_cfg(*PARETO, "study.n_trials=1")
    run(first)
    single = make_cfg("study=tiny_prior", "pruner=none", "study.n_trials=2", name=first.study.name)
    with pytest.raises(UserError, match="exists with direction maximize, minimize, not maximize"):
        run(single)


def test_hpo_check_repairs_a_multi_objective_study(make_cfg) -> None:
    cfg = make_cfg(*PARETO, "study.n_trials=2")
    run(cfg)
    _, children = runs(cfg)
    MlflowClient(cfg.tracking.uri).delete_run(children[0].info.run_id)
    assert [m.problem for m in open_check(cfg).mismatches()] != []
    assert check(cfg, repair=True) == 0
    assert open_check(cfg).mismatches() == []
    _, restored = runs(cfg)
    assert restored[0].data.metrics["roc_auc"] == load(cfg).trials[0].values[0]
