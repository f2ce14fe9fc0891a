"""Text data sets: the generated ``intents`` (hpo/data/intents.py), or a local CSV/JSONL file.

A text data set is a ``Dataset`` whose X is a numpy object array of strings
(one utterance per row) and whose ``groups`` say which rows share a phrasing,
so that ``cv: {scheme: group_holdout}`` scores on phrasings never seen in
training. ``intents`` is the default of the LoRA studies.

Local files are read with Hugging Face ``datasets`` (CSV or JSON lines):
``{path: FILE.jsonl, text: text, target: label, group: null}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import LabelEncoder

from hpo.data.base import Dataset
from hpo.data.intents import generate_intents
from hpo.errors import UserError


def load_intents(seed: int, **options: Any) -> Dataset:
    """The generated intents as a Dataset (``options`` go to generate_intents)."""
    texts, labels, groups = generate_intents(seed, **options)
    return _dataset("intents", texts, labels, groups)


def load_text(spec: Mapping[str, Any], seed: int) -> Dataset:
    """``{name: intents, per_intent: N}``, or ``{path: FILE, text: COL, target: COL, group: COL}``.

    The group column is optional (needed by the group_holdout and group_kfold schemes).
    """
    if "path" not in spec:
        options = {k: v for k, v in spec.items() if k != "name"}
        if spec.get("name") != "intents":
            raise UserError(
                f"unknown text data set '{spec.get('name')}': use study.data.name=intents "
                "or study.data.path=FILE.csv|jsonl with study.data.text=COLUMN"
            )
        try:
            return load_intents(seed, **options)
        except TypeError as err:
            raise UserError(f"study.data: {err}; use per_intent, typo_rate, filler_rate") from None
    path = Path(str(spec["path"]))
    text, target = str(spec.get("text", "text")), str(spec.get("target", "label"))
    group = spec.get("group")
    columns = _read_columns(path, [text, target, *([str(group)] if group else [])])
    groups = columns[str(group)] if group else None
    return _dataset(path.stem, columns[text], columns[target], groups)


def _read_columns(path: Path, wanted: list[str]) -> dict[str, list[str]]:
    """The named columns of a local CSV or JSON-lines file, read with ``datasets``."""
    import datasets

    kinds = {".csv": "csv", ".json": "json", ".jsonl": "json"}
    if not path.is_file():
        raise UserError(f"data file '{path}' not found: fix study.data.path")
    if path.suffix.lower() not in kinds:
        raise UserError(f"data file '{path}' is not .csv, .json or .jsonl: convert it or rename it")
    datasets.disable_progress_bars()
    try:
        table = datasets.load_dataset(
            kinds[path.suffix.lower()], data_files=str(path), split="train", keep_in_memory=True
        )
    except Exception as err:
        raise UserError(f"cannot read data file '{path}': {str(err).splitlines()[0]}") from None
    for column in wanted:
        if column not in table.column_names:
            key = {wanted[0]: "text", wanted[1]: "target"}.get(column, "group")
            raise UserError(
                f"data file '{path}' has no column '{column}': set study.data.{key} to one of "
                f"{', '.join(table.column_names)}"
            )
    return {c: ["" if v is None else str(v) for v in table[c]] for c in wanted}


def _dataset(name: str, texts: list[str], labels: list[str], groups: list[str] | None) -> Dataset:
    encoder = LabelEncoder().fit(labels)
    X = np.empty(len(texts), dtype=object)
    X[:] = texts
    return Dataset(
        name,
        X,
        encoder.transform(labels),
        "classification",
        ["text"],
        [str(c) for c in encoder.classes_],
        groups=np.asarray(groups) if groups is not None else None,
    )
