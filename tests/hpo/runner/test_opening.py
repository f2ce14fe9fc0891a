"""open_study: a study is resumed only with the space and direction it was made for."""

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
