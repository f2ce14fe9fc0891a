import numpy as np
import pytest

from hpo.data import LOADERS, Dataset, load_data
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
        "intents",  # texts: tests/hpo/test_text_data.py
    }


def test_imbalanced_has_about_ten_percent_positives():
    data = load_data("imbalanced", "classification", seed=0)
    assert 0.08 < data.y.mean() < 0.13
    assert data.classes == ["negative", "positive"]


def test_generated_data_follows_the_seed():
    a = load_data("friedman", "regression", seed=0)
    b = load_data("friedman", "regression", seed=0)
    c = load_data("friedman", "regression", seed=1)
    assert np.array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


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


# --- CSV ---------------------------------------------------------------------


CSV = """a,b,colour,label
1.0,2.0,red,dog
2.0,1.5,blue,cat
3.0,0.5,red,bird
4.0,0.0,blue,dog
"""


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "pets.csv"
    path.write_text(CSV)
    return path


def test_csv_with_a_string_target_is_encoded(csv_path):
    data = load_data({"path": str(csv_path), "target": "label"}, "classification", seed=0)
    assert data.name == "pets"
    assert data.classes == ["bird", "cat", "dog"]
    assert data.y.tolist() == [2, 1, 0, 2]
    assert data.n_classes == 3


def test_csv_keeps_numeric_feature_columns(csv_path):
    data = load_data({"path": str(csv_path), "target": "label"}, "classification", seed=0)
    assert data.feature_names == ["a", "b"]
    assert data.X.dtype == np.float32
    assert data.X.tolist() == [[1.0, 2.0], [2.0, 1.5], [3.0, 0.5], [4.0, 0.0]]


def test_csv_regression_target(csv_path):
    data = load_data({"path": str(csv_path), "target": "b"}, "regression", seed=0)
    assert data.task == "regression"
    assert data.y.tolist() == [2.0, 1.5, 0.5, 0.0]
    assert data.feature_names == ["a"]
    assert data.classes is None


def test_csv_target_defaults_to_a_column_named_target(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,target\n0.1,0\n0.2,1\n0.3,1\n")
    data = load_data({"path": str(path)}, "classification", seed=0)
    assert data.y.tolist() == [0, 1, 1]


def test_csv_missing_target_column_names_the_valid_columns(csv_path):
    with pytest.raises(UserError, match="has no column 'species'") as err:
        load_data({"path": str(csv_path), "target": "species"}, "classification", seed=0)
    assert "one of a, b, colour, label" in str(err.value)


def test_missing_csv_file_is_a_user_error(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(UserError, match=r"data file '.*nope\.csv' not found.*study\.data\.path"):
        load_data({"path": str(missing), "target": "y"}, "classification", seed=0)


def test_csv_spec_without_path_is_a_user_error():
    with pytest.raises(UserError, match="path"):
        load_data({"target": "y"}, "classification", seed=0)


# --- fingerprint -------------------------------------------------------------


def test_fingerprint_is_stable_across_loads():
    first = load_data("iris", "classification", seed=0).fingerprint()
    assert first == load_data("iris", "classification", seed=0).fingerprint()
    assert len(first) == 16


def test_fingerprint_differs_between_data_sets():
    iris = load_data("iris", "classification", seed=0).fingerprint()
    wine = load_data("wine", "classification", seed=0).fingerprint()
    assert iris != wine


def _small():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    return Dataset("s", X, np.array([0, 1, 0, 1, 0, 1]), "classification", ["a", "b"], ["n", "p"])


def test_fingerprint_changes_when_a_feature_value_changes():
    data = _small()
    before = data.fingerprint()
    data.X[3, 1] += 1
    assert data.fingerprint() != before


def test_fingerprint_changes_when_a_label_changes():
    data = _small()
    before = data.fingerprint()
    data.y[0] = 1
    assert data.fingerprint() != before


def test_fingerprint_of_a_csv_changes_when_the_file_changes(csv_path):
    spec = {"path": str(csv_path), "target": "label"}
    before = load_data(spec, "classification", seed=0).fingerprint()
    assert load_data(spec, "classification", seed=0).fingerprint() == before
    csv_path.write_text(CSV.replace("3.0,0.5", "3.0,0.6"))
    assert load_data(spec, "classification", seed=0).fingerprint() != before
