"""Fixtures the objective tests share: the tiny intents data set LoRA trains on in seconds."""

from __future__ import annotations

import pytest

from hpo.data import Dataset, load_data
from tests.objectives.helpers import TINY_INTENTS


@pytest.fixture(scope="session")
def tiny() -> Dataset:
    """8 intents x 12 utterances."""
    return load_data(TINY_INTENTS, "classification", 0)
