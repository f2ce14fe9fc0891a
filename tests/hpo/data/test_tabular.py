"""Tables: the generated data sets follow the seed; a local CSV is read and encoded."""

import numpy as np
import pytest

from hpo.data import load_data
from hpo.errors import UserError


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


def test_fingerprint_of_a_csv_changes_when_the_file_changes(csv_path):
    spec = {"path": str(csv_path), "target": "label"}
    before = load_data(spec, "classification", seed=0).fingerprint()
    assert load_data(spec, "classification", seed=0).fingerprint() == before
    csv_path.write_text(CSV.replace("3.0,0.5", "3.0,0.6"))
    assert load_data(spec, "classification", seed=0).fingerprint() != before
