"""open_study: a study is resumed only with the space, direction, data and folds it was made for."""

from __future__ import annotations

import pytest

from hpo.errors import UserError
from hpo.runner import run
from tests.hpo.runner.helpers import PRIOR, load


def test_resume_with_another_space_or_direction_is_refused(make_cfg) -> None:
    first = make_cfg(*PRIOR, "study.n_trials=1")
    run(first)
    name = first.study.name
    changed = make_cfg(*PRIOR, "study.space.x.high=2.0", "study.n_trials=2", name=name)
    with pytest.raises(UserError, match=r"parameter x differs.*study\.name"):
        run(changed)
    flipped = make_cfg(*PRIOR, "study.n_trials=2", "study.direction=minimize", name=name)
    with pytest.raises(UserError, match="direction maximize"):
        run(flipped)
    assert len(load(first).trials) == 1


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            ["cv=kfold", "cv.n_splits=5"],
            r"other CV folds \(kfold, 3 folds, seed 0; now kfold, 5 folds",
        ),
        (
            ["cv=kfold", "cv.n_splits=3", "cv.seed=7"],
            r"other CV folds .*now kfold, 3 folds, seed 7",
        ),
        (["study.data=iris"], r"other data \(569 rows x 30 columns, .*; now 150 rows x 4 columns"),
    ],
)
def test_resume_on_other_folds_or_data_is_refused_naming_what_changed(
    make_cfg, change: list[str], said: str
) -> None:
    """Trials scored on other folds or data would be ranked against these as if comparable."""
    first = make_cfg(*PRIOR, "study.n_trials=1", "cv=kfold", "cv.n_splits=3")
    run(first)
    again = make_cfg(*PRIOR, "study.n_trials=2", "cv=kfold", "cv.n_splits=3", name=first.study.name)
    changed = make_cfg(
        *PRIOR, "study.n_trials=2", "cv=kfold", "cv.n_splits=3", *change, name=first.study.name
    )
    with pytest.raises(UserError, match=said + r".*study\.name=NEW_NAME"):
        run(changed)
    assert len(load(first).trials) == 1, "nothing was added to the study"
    run(again)  # the same folds and data: resumed
    assert len(load(first).trials) == 2
