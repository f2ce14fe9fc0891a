"""Optuna's journal file: where it lives, its file locks, and the path Optuna's tools take."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.config import StorageConfig
from hpo.storages import open_storage, optuna_url, study_lock
from hpo.storages.night import AlreadyRunning
from hpo.storages.registry import backend_for


def test_the_journal_file_and_its_folder_are_created(tmp_path: Path) -> None:
    import optuna

    path = tmp_path / "sub" / "optuna.journal"
    optuna.create_study(study_name="s", storage=open_storage(StorageConfig(url=f"journal:{path}")))
    assert path.is_file()
    assert optuna_url(f"journal://{path}") == str(path)


def test_the_study_lock_is_a_file_beside_the_journal(tmp_path: Path) -> None:
    storage = open_storage(StorageConfig(url=f"journal:{tmp_path / 'j'}"))
    with study_lock(storage, "study/1"):
        assert (tmp_path / "j.study_1.lock").exists()


def test_a_second_night_lock_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    backend = backend_for(f"journal:{tmp_path / 'j'}")
    with backend.night_lock("s", "2024-06-01"):
        refused = pytest.raises(AlreadyRunning, match=r"already running \(night 2024-06-01, ")
        with refused, backend.night_lock("s", "2024-06-01"):
            pass
        with backend.night_lock("other", "2024-06-01"):
            pass
    assert not (tmp_path / "j.nightly-s.json").exists(), "who held it is gone with the lock"
