"""Study constraints (hpo/constraints.py) and the candidates table (hpo/candidates.py), end to
end: a tiny objective whose fit facts trade against its metric, run by the real runner on an
Optuna journal and the MLflow SQLite store, both read back.

The trials are enqueued (x = 0.1, 0.4, 0.6, 0.9), so which trial is best does not depend on
what a sampler draws: log loss rises with x (the prediction moves off the class prior) and
the latency falls with it, so the best trial without constraints (x = 0.1) is the slowest.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

import hpo.command as hpo_main
from hpo import constraints
from hpo.config import Config, Constraint, StudyConfig
from hpo.cv import CVResult
from hpo.errors import UserError
from hpo.runner import run, tell
from hpo.storages import open_storage
from hpo.tracking.records import TrialRecord
from objectives.base import FoldData, FoldOutput, Reporter
from tests.hpo.helpers import PriorObjective, process_state_kept
from tests.hpo.runner.helpers import load, runs

XS = (0.1, 0.4, 0.6, 0.9)  # trials 0..3; latency 4 (1 - x): 3.6, 2.4, 1.6, 0.4 ms
COSTLY = [
    "study=tiny_prior",
    "pruner=none",
    f"study.objective._target_={__name__}.CostlyPrior",
    "study.metric=log_loss",
    f"study.n_trials={len(XS)}",
    "evaluation.curves=false",  # the winner's curves and BBC-CV: not what is tested here
    "evaluation.bbc_boot=0",
]
LATENCY_CAP = "study.constraints=[{name:latency_ms_b1,max:2.0}]"  # trials 2 and 3 meet it


@dataclass
class CostlyPrior(PriorObjective):
    """PriorObjective whose better trials (low x) cost more to serve: it reports a latency
    and a size that fall with x, as a compressed model's would."""

    fit_fact_names = ("calls", "latency_ms_b1", "model_kb")

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        out = super().fit_predict(params, fold, report)
        x = float(params["x"])
        facts = {"calls": 1.0, "latency_ms_b1": 4.0 * (1.0 - x), "model_kb": 100.0 * (1.0 - x)}
        return FoldOutput(out.scores, facts)


def enqueue(cfg: Config, directions: int = 1) -> None:
    """Create the study with its trials waiting, one per x in XS, as a warm start does."""
    study = optuna.create_study(
        study_name=cfg.study.name,
        storage=open_storage(cfg.storage),
        directions=["minimize"] * directions,
    )
    for x in XS:
        study.enqueue_trial({"x": x})


def artifact(cfg: Config, run_id: str, path: str) -> str:
    return Path(MlflowClient(cfg.tracking.uri).download_artifacts(run_id, path)).read_text()


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "gp"])
def test_an_infeasible_trial_is_never_best_and_is_marked_in_both_stores(
    make_cfg, sampler: str
) -> None:
    cfg = make_cfg(*COSTLY, LATENCY_CAP, f"sampler={sampler}")
    enqueue(cfg)
    summary = run(cfg)

    study = load(cfg)
    assert [t.params["x"] for t in study.trials] == list(XS)
    unconstrained = min(study.trials, key=lambda t: t.values[0])
    assert unconstrained.number == 0, "the best log loss is the slowest trial"
    assert summary is not None and summary.best_number == 2  # the best of trials 2 and 3
    assert study.best_trial.number == 2  # Optuna agrees: it reads the same constraints
    for trial, x in zip(study.trials, XS, strict=True):
        assert trial.constraints == pytest.approx({"latency_ms_b1": 4.0 * (1 - x) - 2.0})
        assert trial.user_attrs["feasible"] is (x > 0.5)

    parent, children = runs(cfg)
    for child, x in zip(children, XS, strict=True):
        assert child.data.tags["hpo.feasible"] == ("true" if x > 0.5 else "false")
        value = child.data.metrics["constraint_latency_ms_b1"]
        assert value == pytest.approx(4.0 * (1 - x) - 2.0)
    tags, metrics = parent.data.tags, parent.data.metrics
    assert tags["hpo.best_trial"] == tags["hpo.model_trial"] == "2"  # refit: the feasible best
    assert tags["hpo.constraints"] == "latency_ms_b1 <= 2"
    assert metrics["n_infeasible"] == 2
    assert "2 of 4 complete trials infeasible" in summary.text()
    assert "best feasible log_loss (minimize)" in summary.text()


def test_the_candidates_are_the_feasible_front_of_metric_against_constrained_facts(
    make_cfg,
) -> None:
    """One objective with constraints: the front of log loss against latency, among trials
    2 and 3 (0 and 1 are infeasible), with every cost fact they report."""
    cfg = make_cfg(*COSTLY, LATENCY_CAP, "sampler=tpe")
    enqueue(cfg)
    summary = run(cfg)

    assert summary is not None
    assert [row["trial"] for row in summary.front] == [2, 3]  # best log loss first
    assert list(summary.front[0]) == ["trial", "log_loss", "latency_ms_b1", "model_kb"]
    assert summary.front[1]["latency_ms_b1"] == pytest.approx(0.4)
    text = summary.text()
    assert "candidates, the Pareto front of the feasible trials (2; best log_loss first)" in text

    parent, _ = runs(cfg)
    table = list(csv.DictReader(io.StringIO(artifact(cfg, parent.info.run_id, "candidates.csv"))))
    assert [row["trial"] for row in table] == ["2", "3"]
    assert float(table[0]["model_kb"]) == pytest.approx(40.0)
    page = artifact(cfg, parent.info.run_id, "candidates.html")
    assert page.count("<tr>") == 3 and "latency_ms_b1 &lt;= 2" in page
    report = artifact(cfg, parent.info.run_id, "report.html")
    assert "Candidates: log_loss against latency_ms_b1" in report
    assert "Infeasible Trial" in report  # trials 0 and 1, drawn apart


def test_a_multi_objective_study_with_constraints_has_a_feasible_front(make_cfg) -> None:
    """Latency capped, size an objective: every trial trades log loss for size, so all four
    are on the front without the cap; with it, trials 0 and 1 are out."""
    objectives = "study.objectives=[{name:model_kb,direction:minimize}]"
    cfg = make_cfg(*COSTLY, LATENCY_CAP, objectives, "sampler=nsga2")
    enqueue(cfg, directions=2)
    summary = run(cfg)

    study = load(cfg)
    values = [t.values for t in study.trials]
    assert all(not (a[0] <= b[0] and a[1] <= b[1]) for a in values for b in values if a != b)
    assert summary is not None and summary.best_number == 2
    assert [row["trial"] for row in summary.front] == [2, 3]
    assert list(summary.front[0]) == ["trial", "log_loss", "model_kb", "latency_ms_b1"]
    parent, _ = runs(cfg)
    assert parent.data.tags["hpo.pareto_front"] == "2,3"
    assert "Infeasible Trial" in artifact(cfg, parent.info.run_id, "report.html")


def test_a_study_without_a_feasible_trial_ends_cleanly_without_a_model(make_cfg) -> None:
    cfg = make_cfg(*COSTLY, "study.constraints=[{name:latency_ms_b1,max:0.1}]", "sampler=tpe")
    enqueue(cfg)
    summary = run(cfg)

    assert summary is not None and summary.best_number is None and summary.front == []
    assert (
        "no trial met the constraints (latency_ms_b1 <= 0.1 failed most, 4 of 4 trials), "
        "so no best log_loss and no model refit"
    ) in summary.text()
    parent, _ = runs(cfg)
    assert parent.info.status == "FINISHED"
    assert "hpo.model_trial" not in parent.data.tags and "hpo.best_trial" not in parent.data.tags
    assert parent.data.metrics["n_infeasible"] == 4


def test_the_constraints_reach_the_sampler_before_it_hears_of_the_trial() -> None:
    """TPE, NSGA-II and GP read ``trial.constraints`` in ``after_trial``, inside tell."""
    seen: list[dict[str, float]] = []

    class Spy(optuna.samplers.TPESampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            seen.append(dict(trial.constraints))
            super().after_trial(study, trial, state, values)

    study = optuna.create_study(sampler=Spy(seed=0))
    trial = study.ask()
    record = TrialRecord(trial.number, "COMPLETE", {})
    assert tell(study, trial, record, CVResult(0.9, 0.0, [0.9]), [0.9], judged={"kb": 0.5})
    assert seen == [{"kb": 0.5}]
    assert study.trials[0].user_attrs["feasible"] is False
    # a retried tell (its reply lost to a dropped connection) writes nothing twice
    assert not tell(study, trial, record, CVResult(0.9, 0.0, [0.9]), [0.9], judged={"kb": 0.5})


def test_resuming_under_other_constraints_is_refused(make_cfg) -> None:
    """Its trials were judged against the old bounds (Optuna only: MLflow is not the point)."""
    first = make_cfg(*COSTLY, LATENCY_CAP, "study.n_trials=1", "tracking.enabled=false")
    run(first)
    looser = make_cfg(
        *COSTLY,
        "study.constraints=[{name:latency_ms_b1,max:3.0}]",
        "tracking.enabled=false",
        name=first.study.name,
    )
    with pytest.raises(UserError, match=r"exists with constraints latency_ms_b1 <= 2, not "):
        run(looser)
    unconstrained = make_cfg(*COSTLY, "tracking.enabled=false", name=first.study.name)
    with pytest.raises(UserError, match=r"latency_ms_b1 <= 2, not none: resume it unchanged"):
        run(unconstrained)


def test_constraint_values_are_how_far_past_each_bound() -> None:
    bounds = [Constraint("latency_ms_b1", max=2.0), Constraint("model_kb", max=64.0, min=8.0)]
    facts = {"latency_ms_b1": 2.5, "model_kb": 4.0}
    assert constraints.values(bounds, facts) == {"latency_ms_b1": 0.5, "model_kb": 4.0}
    assert constraints.values(bounds, {"latency_ms_b1": 2.0, "model_kb": 8.0}) == {
        "latency_ms_b1": 0.0,  # on the bound: met
        "model_kb": 0.0,
    }
    assert constraints.describe(bounds) == "latency_ms_b1 <= 2, 8 <= model_kb <= 64"
    assert constraints.values([], facts) is None


def test_a_constrained_fact_missing_fails_a_complete_trial_but_not_a_pruned_one() -> None:
    """An objective that declares no fit facts is checked at its first fit."""
    bounds = [Constraint("latency_ms_b1", max=2.0)]
    with pytest.raises(ValueError, match=r"'latency_ms_b1' is missing .*\(calls\): fix study"):
        constraints.values(bounds, {"calls": 1.0})
    assert constraints.values(bounds, {"calls": 1.0}, partial=True) is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([Constraint("model_kb")], "model_kb has neither max nor min: give max: N, min: N or"),
        ([Constraint("model_kb", max=8, min=64)], "model_kb has max 8 below min 64: swap them"),
        (
            [Constraint("model_kb", max=64), Constraint("model_kb", min=8)],
            r"name a fact twice \(model_kb, model_kb\): list each once, with its max and min",
        ),
        ([Constraint("latency", max=2)], "latency is not a fit fact of this objective: use one"),
    ],
)
def test_a_bad_constraint_is_refused_in_one_line(given: list[Constraint], message: str) -> None:
    spec = StudyConfig(name="s", metric="f1", constraints=given)
    with pytest.raises(UserError, match=message):
        constraints.checked(spec, "tpe", True, ("latency_ms_b1", "model_kb"))


def test_the_samplers_that_honour_constraints_are_read_from_their_yaml() -> None:
    assert constraints.samplers_that_honour() == ["gp", "nsga2", "tpe"]


@pytest.fixture
def argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """sys.argv for one in-process ``python -m hpo`` in tmp_path; what main() and Hydra set
    for the process (the SIGTERM handler, root logger handlers, Optuna's verbosity) is undone
    after (as tests/hpo/test_errors.py does)."""
    monkeypatch.chdir(tmp_path)
    args = ["hpo"]
    monkeypatch.setattr(sys, "argv", args)
    monkeypatch.setattr(hpo_main, "_failures", [])
    with process_state_kept():
        yield args


CLI = [*COSTLY, "tracking.enabled=false", "progress=false"]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["study.constraints=[{name:latency,max:2.0}]"],
            "error: study.constraints latency is not a fit fact of this objective: "
            "use one of calls, latency_ms_b1, model_kb\n",
        ),
        (
            [LATENCY_CAP, "sampler=random"],
            "error: sampler=random cannot honour study.constraints: "
            "use sampler=gp, sampler=nsga2, sampler=tpe\n",
        ),
        (
            ["study.constraints=[{name:latency_ms_b1}]"],
            "error: study.constraints latency_ms_b1 has neither max nor min: "
            "give max: N, min: N or both\n",
        ),
    ],
)
def test_a_refused_constraint_is_one_line_and_exit_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], overrides: list[str], line: str
) -> None:
    argv.extend([*CLI, *overrides])
    with pytest.raises(SystemExit) as done:
        hpo_main.main()
    assert done.value.code == 2
    assert capsys.readouterr().err == line
    assert not (Path.cwd() / "optuna.journal").exists(), "refused before the study was made"


def test_no_feasible_trial_is_exit_status_0_with_the_reason(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
    )
    study = optuna.create_study(study_name="tiny_prior", storage=storage)
    for x in XS:
        study.enqueue_trial({"x": x})
    argv.extend([*CLI, "study.constraints=[{name:latency_ms_b1,max:0.1}]"])
    hpo_main.main()  # returns: exit status 0
    out = capsys.readouterr().out
    assert "constraints latency_ms_b1 <= 0.1: 4 of 4 complete trials infeasible" in out
    assert "no trial met the constraints (latency_ms_b1 <= 0.1 failed most" in out
