"""The one shape every data set has, and the contract of a named loader.

A ``Dataset`` holds features, a target encoded to 0..k-1 for classification
(so that every objective and metric sees the same labels), and what the target
means. X is a float array for tables, or a numpy object array of strings (one
text per row) for text data. A ``Loader`` makes one named data set from a
seed, offline; the names a study can use are in ``hpo.data.registry.LOADERS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

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

    def rows(self, index: np.ndarray) -> Dataset:
        """The same data set on the rows ``index`` only (tuning rows, held-out rows)."""
        groups = None if self.groups is None else self.groups[index]
        return replace(self, X=self.X[index], y=self.y[index], groups=groups)

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


# A named data set: made from the study's seed (the bundled ones ignore it).
Loader = Callable[[int], Dataset]
