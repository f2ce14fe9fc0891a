"""Small datasets for the folds and CV tests: column 0 of X is each row's id."""

import numpy as np

from hpo.data import Dataset


def regression_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.arange(n), rng.normal(size=n)]).astype(float)  # column 0: row id
    y = rng.normal(loc=5.0, scale=2.0, size=n)
    return Dataset("reg", X, y, "regression", ["row", "x"])


def classification_data(counts=(30, 15, 15), seed=0):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    X = np.column_stack([np.arange(len(y)), rng.normal(size=len(y))]).astype(float)
    classes = [f"c{i}" for i in range(len(counts))]
    return Dataset("clf", X, y, "classification", ["row", "x"], classes)
