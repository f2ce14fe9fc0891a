"""The adapted encoder scores texts in the shape the metrics expect."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.data import Dataset
from objectives.lora import LoRAObjective
from tests.objectives.helpers import holdout_fold
from tests.objectives.lora.helpers import FAST


@pytest.mark.slow
def test_binary_tasks_score_class_one(tiny) -> None:
    keep = tiny.y < 2
    data = Dataset("two", tiny.X[keep], tiny.y[keep], "classification", ["text"], ["a", "b"])
    out = LoRAObjective(**FAST).fit_predict({}, holdout_fold(data))
    assert out.scores.ndim == 1 and np.all((out.scores >= 0) & (out.scores <= 1))
