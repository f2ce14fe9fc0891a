"""The one table of named data sets, and ``load_data``: what a study's ``data:`` says, loaded.

Adding a named data set: one loader (``seed -> Dataset``) in the module of its
kind, one entry here. The order of ``LOADERS`` is the order the error for an
unknown name lists them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sklearn import datasets

from hpo.data.base import Dataset, Loader
from hpo.data.tabular import bundled, friedman, imbalanced, load_csv
from hpo.data.text import load_intents, load_text
from hpo.errors import UserError
from hpo.metrics import Task

LOADERS: dict[str, Loader] = {
    "breast_cancer": bundled(datasets.load_breast_cancer, "classification"),
    "digits": bundled(datasets.load_digits, "classification"),
    "iris": bundled(datasets.load_iris, "classification"),
    "wine": bundled(datasets.load_wine, "classification"),
    "diabetes": bundled(datasets.load_diabetes, "regression"),
    "imbalanced": imbalanced,
    "friedman": friedman,
    "intents": load_intents,  # texts (X holds strings): hpo/data/text.py
}


def load_data(spec: str | Mapping[str, Any], task: Task, seed: int) -> Dataset:
    """A data set from a name in LOADERS, ``{path: file.csv, target: column}``, or text data.

    Text data (hpo/data/text.py): ``{name: intents, ...}`` or a CSV/JSONL file
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
        data = load_text(spec, seed)
    else:
        if "path" not in spec:
            raise UserError(
                "study.data needs a path: set study.data={path: FILE.csv, "
                "target: COLUMN} or a data set name"
            )
        data = load_csv(Path(str(spec["path"])), str(spec.get("target", "target")), task)
    if data.task != task:
        raise UserError(
            f"data set '{data.name}' is a {data.task} task but the objective is "
            f"{task}: set study.objective.task={data.task} or choose other data"
        )
    return data
