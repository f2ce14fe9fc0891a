"""claim: the budget, a grid's size, and grid points retried but never run twice."""

from __future__ import annotations

from optuna.trial import TrialState

from hpo.runner import run
from tests.hpo.runner.helpers import PRIOR, load


def test_grid_budget_defaults_to_grid_size(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "+study.space.x.step=0.5", "sampler=grid", "study.n_trials=null")
    run(cfg)
    values = sorted(t.params["x"] for t in load(cfg).trials)
    assert values == [0.0, 0.5, 1.0]


def test_a_grid_point_that_failed_once_is_run_again_and_no_point_twice(make_cfg) -> None:
    cfg = make_cfg(
        *PRIOR,
        "+study.space.x.step=0.5",
        "sampler=grid",
        "study.n_trials=null",
        "study.objective._target_=tests.hpo.helpers.FlakyObjective",
        "+study.objective.flaky=[0.5]",
        "n_jobs=1",
    )
    run(cfg)
    trials = load(cfg).trials
    complete = sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [0.0, 0.5, 1.0], "every point once: the failed one again, none twice"
    assert [t.params["x"] for t in trials if t.state == TrialState.FAIL] == [0.5]


def test_a_grid_point_that_always_fails_is_given_up_after_max_retry(make_cfg) -> None:
    cfg = make_cfg(
        *PRIOR,
        "+study.space.x.step=0.5",
        "sampler=grid",
        "study.n_trials=null",
        "+study.objective.fail_above=0.75",
        "storage.max_retry=2",
    )
    summary = run(cfg)
    trials = load(cfg).trials
    complete = sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [0.0, 0.5]
    assert [t.params["x"] for t in trials if t.state == TrialState.FAIL] == [1.0] * 3
    assert summary.counts["FAIL"] == 3, "tried once and retried twice, then given up"
