"""Dataset.fingerprint: stable for the same data, changed by any feature or label value."""

import numpy as np

from hpo.data import Dataset, load_data


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
