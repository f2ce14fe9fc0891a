"""load_data: every named data set, and the user errors for a name, spec or task that is wrong."""

import numpy as np
import pytest

from hpo.data import LOADERS, load_data
from hpo.errors import UserError


@pytest.mark.parametrize(
    ("name", "task", "shape", "n_classes"),
    [
        ("breast_cancer", "classification", (569, 30), 2),
        ("digits", "classification", (1797, 64), 10),
        ("iris", "classification", (150, 4), 3),
        ("wine", "classification", (178, 13), 3),
        ("diabetes", "regression", (442, 10), 0),
        ("imbalanced", "classification", (20_000, 40), 2),
        ("friedman", "regression", (5_000, 10), 0),
    ],
)
def test_named_loader(name, task, shape, n_classes):
    data = load_data(name, task, seed=0)
    assert data.name == name
    assert data.task == task
    assert data.X.shape == shape
    assert data.y.shape == (shape[0],)
    assert len(data.feature_names) == shape[1]
    assert data.n_classes == n_classes
    assert np.isfinite(data.X).all()
    if task == "classification":
        assert sorted(np.unique(data.y).tolist()) == list(range(n_classes))
        assert np.issubdtype(data.y.dtype, np.integer)
    else:
        assert data.classes is None
        assert np.issubdtype(data.y.dtype, np.floating)


def test_every_loader_is_covered():
    assert set(LOADERS) == {
        "breast_cancer",
        "digits",
        "iris",
        "wine",
        "diabetes",
        "imbalanced",
        "friedman",
        "intents",  # texts: tests/hpo/data/test_text.py
    }


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(UserError, match="unknown data set 'mnist'") as err:
        load_data("mnist", "classification", seed=0)
    for name in LOADERS:
        assert name in str(err.value)


def test_task_mismatch_is_a_user_error():
    with pytest.raises(UserError, match=r"'iris' is a classification task.*task=classification"):
        load_data("iris", "regression", seed=0)


def test_regression_data_for_a_classifier_is_a_user_error():
    with pytest.raises(UserError, match="'diabetes' is a regression task"):
        load_data("diabetes", "classification", seed=0)


def test_csv_spec_without_path_is_a_user_error():
    with pytest.raises(UserError, match="path"):
        load_data({"target": "y"}, "classification", seed=0)
