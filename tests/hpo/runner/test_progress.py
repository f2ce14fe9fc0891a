"""progress: the bar's start and postfix on a terminal, one log line per trial otherwise."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.runner import make_plan
from hpo.runner.progress import progress_bar, show
from hpo.tracking.records import TrialRecord
from tests.hpo.runner.helpers import PRIOR

X = {"x": FloatDistribution(0.0, 1.0)}
OFF = SimpleNamespace(progress=False)  # all of the config progress_bar reads


@pytest.fixture
def plan(make_cfg):
    return make_plan(make_cfg(*PRIOR))


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """tty(): from then on stderr (capsys's, active only in the test's body) is a TTY."""
    return lambda: monkeypatch.setattr(sys.stderr, "isatty", lambda: True)


def study(plan, *trials) -> optuna.Study:
    made = optuna.create_study(direction=plan.direction)
    for state, value in trials:
        made.add_trial(create_trial(state=state, value=value, params={"x": 0.5}, distributions=X))
    return made


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hpo.runner.progress"]


def finish(made: optuna.Study, state: TrialState, value: float | None = None) -> None:
    """What the loop does before show(): the trial is told to the study."""
    made.add_trial(create_trial(state=state, value=value, params={"x": 0.5}, distributions=X))


def test_the_bar_is_disabled_when_progress_is_off(make_cfg, tty) -> None:
    tty()
    cfg = make_cfg(*PRIOR)
    assert cfg.progress is False
    plan = make_plan(cfg)
    assert progress_bar(cfg, plan, study(plan)).disable


def test_the_bar_is_disabled_when_stderr_is_not_a_terminal(make_cfg, capsys) -> None:
    cfg = make_cfg(*PRIOR, "progress=true")
    assert cfg.progress is True
    assert not sys.stderr.isatty()
    plan = make_plan(cfg)
    assert progress_bar(cfg, plan, study(plan)).disable


def test_the_bar_starts_at_the_trials_already_counted(make_cfg, tty) -> None:
    tty()
    cfg = make_cfg(*PRIOR, "progress=true")
    plan = make_plan(cfg)
    resumed = study(
        plan, (TrialState.COMPLETE, 0.7), (TrialState.PRUNED, None), (TrialState.FAIL, None)
    )
    bar = progress_bar(cfg, plan, resumed)
    assert not bar.disable
    assert (bar.total, bar.n, bar.desc) == (plan.budget, 2, plan.spec.name), "a failure not counted"


def test_the_bar_never_starts_past_the_budget(make_cfg, tty) -> None:
    tty()
    cfg = make_cfg(*PRIOR, "progress=true", "study.n_trials=1")
    plan = make_plan(cfg)
    bar = progress_bar(cfg, plan, study(plan, *[(TrialState.COMPLETE, 0.5)] * 3))
    assert not bar.disable
    assert (bar.total, bar.n) == (1, 1)


def test_the_bar_advances_past_complete_and_pruned_but_not_failed(make_cfg, tty, caplog) -> None:
    tty()
    caplog.set_level(logging.INFO, logger="hpo.runner.progress")
    cfg = make_cfg(*PRIOR, "progress=true")
    plan = make_plan(cfg)
    made = study(plan)
    bar = progress_bar(cfg, plan, made)
    metric = plan.spec.metric

    finish(made, TrialState.COMPLETE, 0.8)
    show(bar, made, TrialRecord(0, "COMPLETE", {"x": 0.5}, {metric: 0.8}), plan)
    assert bar.n == 1
    assert bar.postfix == f"best {metric}=0.8000"

    finish(made, TrialState.PRUNED)
    show(bar, made, TrialRecord(1, "PRUNED", {"x": 0.5}), plan)
    finish(made, TrialState.FAIL)
    show(bar, made, TrialRecord(2, "FAIL", {"x": 0.5}), plan)
    assert bar.n == 2, "the failed trial is not counted"
    assert bar.postfix == f"best {metric}=0.8000"
    assert not lines(caplog), "a bar, so no log lines"


def test_without_a_bar_each_trial_is_one_log_line(plan, caplog) -> None:
    caplog.set_level(logging.INFO, logger="hpo.runner.progress")
    made = study(plan)
    bar = progress_bar(OFF, plan, made)
    assert bar.disable
    metric = plan.spec.metric

    show(bar, made, TrialRecord(0, "FAIL", {"x": 0.1}), plan)
    finish(made, TrialState.COMPLETE, 0.91234)
    show(bar, made, TrialRecord(1, "COMPLETE", {"x": 0.5}, {metric: 0.91234}), plan)
    finish(made, TrialState.PRUNED)
    show(bar, made, TrialRecord(2, "PRUNED", {"x": 0.9}, {"other": 1.0}), plan)

    assert lines(caplog) == [
        f"trial 0 FAIL {metric}=- best=-",
        f"trial 1 COMPLETE {metric}=0.9123 best=0.9123",
        f"trial 2 PRUNED {metric}=- best=0.9123",
    ]


def test_a_multi_objective_study_shows_the_best_of_its_first_objective(plan, caplog) -> None:
    caplog.set_level(logging.INFO, logger="hpo.runner.progress")
    made = optuna.create_study(directions=[plan.direction, "minimize"])
    for values in ([0.6, 1.0], [0.9, 5.0], [0.7, 0.1]):
        made.add_trial(create_trial(values=values, params={"x": 0.5}, distributions=X))
    bar = progress_bar(OFF, plan, made)
    show(bar, made, TrialRecord(3, "COMPLETE", {"x": 0.5}, {plan.spec.metric: 0.7}), plan)
    best = "0.9000" if plan.direction == "maximize" else "0.6000"
    assert lines(caplog) == [f"trial 3 COMPLETE {plan.spec.metric}=0.7000 best={best}"]
