"""The study's summary (hpo/report.py): what it says of the best trial, and of its spread."""

from __future__ import annotations

import pytest

from hpo.runner import run
from tests.hpo.runner.helpers import PRIOR


@pytest.mark.parametrize(
    ("cv", "said"),
    [
        (["cv=kfold", "cv.n_splits=3"], "± 0.0000 (trial 0, std over folds)"),
        (["cv=holdout"], "(trial 0, one validation score)"),
    ],
)
def test_the_best_value_shows_a_spread_only_where_there_are_folds(
    make_cfg, cv: list[str], said: str
) -> None:
    """A holdout (or leave-one-out) score has no spread: "± 0.0000" would claim one."""
    summary = run(make_cfg(*PRIOR, "study.n_trials=1", *cv))
    assert summary is not None
    line = next(x for x in summary.text().splitlines() if x.strip().startswith("best "))
    assert line.endswith(said), line
    assert ("±" in line) == (said.startswith("±"))
