"""Tables of numeric features: scikit-learn's bundled data sets, generated ones, a local CSV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn.preprocessing import LabelEncoder

from hpo.data.base import Dataset, Loader
from hpo.errors import UserError
from hpo.metrics import Task


def bundled(loader: Callable[..., Any], task: Task) -> Loader:
    """A scikit-learn ``load_*`` function as a loader, named without its ``load_``."""

    def load(seed: int) -> Dataset:
        bunch = loader()
        names = [str(n) for n in bunch.feature_names]
        classes = [str(c) for c in bunch.target_names] if task == "classification" else None
        return Dataset(
            loader.__name__[5:], bunch.data.astype(np.float32), bunch.target, task, names, classes
        )

    return load


def imbalanced(seed: int) -> Dataset:
    """20,000 rows, 40 features (12 informative), about 10% positives, 1% label noise."""
    X, y = datasets.make_classification(
        n_samples=20_000,
        n_features=40,
        n_informative=12,
        n_redundant=8,
        weights=[0.9],
        flip_y=0.01,
        class_sep=0.8,
        random_state=seed,
    )
    return Dataset(
        "imbalanced",
        X.astype(np.float32),
        y,
        "classification",
        [f"x{i}" for i in range(40)],
        ["negative", "positive"],
    )


def friedman(seed: int) -> Dataset:
    """Friedman #1 regression: 5,000 rows, 10 features of which 5 matter, with noise."""
    X, y = datasets.make_friedman1(n_samples=5_000, n_features=10, noise=1.0, random_state=seed)
    return Dataset("friedman", X.astype(np.float32), y, "regression", [f"x{i}" for i in range(10)])


def load_csv(path: Path, target: str, task: Task) -> Dataset:
    """A local CSV with numeric feature columns and one target column."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"data file '{path}' not found: fix study.data.path")
    frame = pd.read_csv(path)
    if target not in frame.columns:
        raise UserError(
            f"data file '{path}' has no column '{target}': set study.data.target to "
            f"one of {', '.join(map(str, frame.columns))}"
        )
    features = frame.drop(columns=[target]).select_dtypes("number")
    if task == "classification":
        encoder = LabelEncoder().fit(frame[target])
        y = encoder.transform(frame[target])
        classes: list[str] | None = [str(c) for c in encoder.classes_]
    else:
        y, classes = frame[target].to_numpy(dtype=float), None
    return Dataset(
        path.stem,
        features.to_numpy(dtype=np.float32),
        y,
        task,
        [str(c) for c in features.columns],
        classes,
    )
