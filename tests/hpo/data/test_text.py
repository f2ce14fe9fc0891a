"""Text data: the generated intents as a Dataset, group splits, and local CSV/JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpo.config import CVConfig
from hpo.data import load_data
from hpo.data.intents import main
from hpo.errors import UserError
from hpo.folds import make_folds


def test_intents_are_seeded_and_big_enough() -> None:
    data = load_data("intents", "classification", 0)
    assert len(data.y) >= 1500 and data.n_classes >= 6
    assert data.X.dtype == object and isinstance(data.X[0], str)
    assert np.bincount(data.y).min() == np.bincount(data.y).max()  # balanced
    assert load_data("intents", "classification", 0).fingerprint() == data.fingerprint()
    assert load_data("intents", "classification", 1).fingerprint() != data.fingerprint()
    assert len(set(data.X)) > 0.95 * len(data.X), "paraphrase variety, not copies"


def test_group_holdout_validates_on_phrasings_never_trained_on() -> None:
    data = load_data("intents", "classification", 0)
    cv = CVConfig(scheme="group_holdout", test_size=0.25, seed=0)
    [(train, valid)] = make_folds(cv, data)
    assert data.groups is not None
    assert not set(data.groups[train]) & set(data.groups[valid])
    assert len(valid) == pytest.approx(0.25 * len(data.y), rel=0.1)
    assert set(np.bincount(data.y[valid])) == {len(valid) // data.n_classes}  # stratified


def test_group_scheme_without_groups_is_a_user_error() -> None:
    data = load_data("iris", "classification", 0)
    with pytest.raises(UserError, match=r"needs groups.*study\.data\.group"):
        make_folds(CVConfig(scheme="group_kfold", n_splits=3, seed=0), data)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_local_files_are_read_with_their_named_columns(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"intents{suffix}"
    main([str(tmp_path / "all.jsonl"), "3"])
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    rows = rows[::20]
    if suffix == ".csv":
        import csv

        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, ["utterance", "intent", "group"])
            writer.writeheader()
            writer.writerows(
                {"utterance": r["text"], "intent": r["label"], "group": r["group"]} for r in rows
            )
        spec = {"path": str(path), "text": "utterance", "target": "intent", "group": "group"}
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        spec = {"path": str(path), "text": "text", "target": "label", "group": "group"}

    data = load_data(spec, "classification", 0)

    assert list(data.X) == [r["text"] for r in rows]
    assert data.classes is not None
    assert [data.classes[i] for i in data.y] == [r["label"] for r in rows]
    assert data.groups is not None and list(data.groups) == [r["group"] for r in rows]


def test_a_file_without_the_named_column_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"sentence": "hi", "label": "a"}\n')
    with pytest.raises(UserError, match=r"no column 'text': set study.data.text to one of"):
        load_data({"path": str(path), "text": "text", "target": "label"}, "classification", 0)
    with pytest.raises(UserError, match=r"not found: fix study\.data\.path"):
        load_data({"path": str(tmp_path / "nope.csv"), "text": "t"}, "classification", 0)
