"""The winner's bias and variance (hpo/runner/winner.py): drawn when cheap, said when not.

BBC-CV, the t-test against the next best and the evaluation pages are run
end to end in test_finish.py; here the choice of whether to draw the curves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from hpo.errors import UserError
from hpo.runner import make_plan
from hpo.runner.winner import CURVE_FITS, CURVE_SECONDS, bias_variance
from tests.hpo.runner.helpers import PRIOR


def study_of(seconds: float) -> optuna.Study:
    """Three complete trials of the prior study's space, each taking ``seconds``."""
    study = optuna.create_study(direction="maximize")
    start = dt.datetime(2024, 6, 1)
    for i in range(3):
        trial = create_trial(
            value=0.5 + i / 10,
            params={"x": i / 3},
            distributions={"x": FloatDistribution(0.0, 1.0)},
        )
        trial.datetime_start = start
        trial.datetime_complete = start + dt.timedelta(seconds=seconds)
        study.add_trial(trial)  # the template's times are kept
    return study


def test_auto_draws_the_curves_of_a_cheap_winner(make_cfg) -> None:
    plan = make_plan(make_cfg(*PRIOR, "cv=kfold", "cv.n_splits=3"))
    study = study_of(seconds=0.1)
    line, sections = bias_variance(plan, study, study.best_trial)
    assert line.startswith(("high bias", "high variance", "balanced")), line
    [(heading, figures)] = sections
    assert heading == f"Trial {study.best_trial.number}: bias and variance"
    titles = [figure.layout.title.text for figure in figures]
    assert any("Learning curve" in t for t in titles), titles


def test_auto_says_what_drawing_a_costly_winners_curves_would_take(make_cfg) -> None:
    plan = make_plan(make_cfg(*PRIOR, "cv=kfold", "cv.n_splits=3"))
    slow = 2 * CURVE_SECONDS / CURVE_FITS  # each trial twice what the bound allows
    study = study_of(seconds=slow)
    line, sections = bias_variance(plan, study, study.best_trial)
    assert sections == []
    assert line == f"not drawn: about {CURVE_FITS * slow:.0f} s of refits (evaluation.curves=true)"
    forced = dataclasses.replace(plan, curves="on")
    line, pages = bias_variance(forced, study, study.best_trial)
    assert pages and not line.startswith("not drawn")


def test_curves_off_draws_nothing_and_says_nothing(make_cfg) -> None:
    plan = make_plan(make_cfg(*PRIOR, "evaluation.curves=false"))
    assert plan.curves == "off"
    study = study_of(seconds=0.1)
    assert bias_variance(plan, study, study.best_trial) == ("", [])


def test_leave_one_out_has_no_curves_and_says_why(make_cfg) -> None:
    plan = make_plan(make_cfg(*PRIOR, "cv=loo"))
    study = study_of(seconds=0.1)
    line, pages = bias_variance(plan, study, study.best_trial)
    assert (line, pages) == ("no curves under leave-one-out (each fold scores one row)", [])


@pytest.mark.parametrize("said", ["true", "auto", "false"])
def test_evaluation_curves_takes_true_auto_or_false(make_cfg, said: str) -> None:
    plan = make_plan(make_cfg(*PRIOR, f"evaluation.curves={said}"))
    assert plan.curves == {"true": "on", "auto": "auto", "false": "off"}[said]


def test_another_evaluation_curves_value_is_one_clear_error(make_cfg) -> None:
    with pytest.raises(UserError, match=r"evaluation\.curves is 'sometimes': use auto, true or"):
        make_plan(make_cfg(*PRIOR, "evaluation.curves=sometimes"))
