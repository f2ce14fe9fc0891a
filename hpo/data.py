"""Data sets a study can name: scikit-learn's bundled ones, generated ones, or a local CSV.

Everything here works offline. Classification targets are encoded to
0..k-1 so that every objective and metric sees the same labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn.preprocessing import LabelEncoder

from hpo import text_data
from hpo.errors import UserError
from hpo.metrics import Task


@dataclass
class Dataset:
    """Features, encoded target, and what the target means."""

    name: str
    X: np.ndarray
    y: np.ndarray
    task: Task
    feature_names: list[str]
    classes: list[str] | None = None
    groups: np.ndarray | None = None  # rows sharing a group stay on one side of a group split

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def fingerprint(self) -> str:
        """A short hash of the data, to see when a study's data changed."""
        if self.X.dtype == object:  # texts: the bytes of an object array are pointers
            digest = hashlib.sha256("\0".join(map(str, self.X)).encode())
        else:
            digest = hashlib.sha256(np.ascontiguousarray(self.X).tobytes())
        digest.update(np.ascontiguousarray(self.y).tobytes())
        return digest.hexdigest()[:16]


def _bundled(loader: Callable[..., Any], task: Task) -> Callable[[int], Dataset]:
    def load(seed: int) -> Dataset:
        bunch = loader()
        names = [str(n) for n in bunch.feature_names]
        classes = [str(c) for c in bunch.target_names] if task == "classification" else None
        return Dataset(
            loader.__name__[5:], bunch.data.astype(np.float32), bunch.target, task, names, classes
        )

    return load


def _imbalanced(seed: int) -> Dataset:
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


def _friedman(seed: int) -> Dataset:
    """Friedman #1 regression: 5,000 rows, 10 features of which 5 matter, with noise."""
    X, y = datasets.make_friedman1(n_samples=5_000, n_features=10, noise=1.0, random_state=seed)
    return Dataset("friedman", X.astype(np.float32), y, "regression", [f"x{i}" for i in range(10)])


LOADERS: dict[str, Callable[[int], Dataset]] = {
    "breast_cancer": _bundled(datasets.load_breast_cancer, "classification"),
    "digits": _bundled(datasets.load_digits, "classification"),
    "iris": _bundled(datasets.load_iris, "classification"),
    "wine": _bundled(datasets.load_wine, "classification"),
    "diabetes": _bundled(datasets.load_diabetes, "regression"),
    "imbalanced": _imbalanced,
    "friedman": _friedman,
    "intents": text_data.intents,  # texts (X holds strings): hpo/text_data.py
}


def load_data(spec: str | Mapping[str, Any], task: Task, seed: int) -> Dataset:
    """A data set from a name in LOADERS, ``{path: file.csv, target: column}``, or text data.

    Text data (hpo/text_data.py): ``{name: intents, ...}`` or a CSV/JSONL file
    with a ``text:`` column, ``{path: FILE, text: COLUMN, target: COLUMN}``.
    """
    if isinstance(spec, str):
        if spec not in LOADERS:
            raise UserError(
                f"unknown data set '{spec}': set study.data to one of "
                f"{', '.join(LOADERS)} or to {{path: FILE.csv, target: COLUMN}}"
            )
        data = LOADERS[spec](seed)
    elif "text" in spec or "name" in spec:
        data = text_data.load_text(spec, seed)
    else:
        if "path" not in spec:
            raise UserError(
                "study.data needs a path: set study.data={path: FILE.csv, "
                "target: COLUMN} or a data set name"
            )
        data = _load_csv(Path(str(spec["path"])), str(spec.get("target", "target")), task)
    if data.task != task:
        raise UserError(
            f"data set '{data.name}' is a {data.task} task but the objective is "
            f"{task}: set study.objective.task={data.task} or choose other data"
        )
    return data


def _load_csv(path: Path, target: str, task: Task) -> Dataset:
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
