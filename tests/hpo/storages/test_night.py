"""The file night lock of local storages (journal, SQLite): one holder, refused at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filelock import FileLock

from hpo.storages.night import AlreadyRunning, file_night_lock, holder, lock_file
from hpo.storages.registry import backend_for


def test_the_lock_file_sits_beside_the_storage_with_a_safe_study_name(tmp_path: Path) -> None:
    db = tmp_path / "optuna.db"
    assert lock_file(str(db), "nightly") == tmp_path / "optuna.db.nightly-nightly.lock"
    assert lock_file(str(db), "a/b c*d.e-f_g") == tmp_path / "optuna.db.nightly-a_b_c_d.e-f_g.lock"


def test_a_second_holder_is_refused_at_once_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "s.lock"  # its folder is made
    with file_night_lock(path, "s", "2024-05-01"):
        held = json.loads(path.with_suffix(".json").read_text())
        assert held["holder"] == holder() and held["night"] == "2024-05-01"
        second = file_night_lock(path, "s", "2024-05-02")
        refused = pytest.raises(AlreadyRunning, match="nightly study 's' is already running")
        with refused as err, second:
            raise AssertionError("a second holder got the night lock")
        assert f"night 2024-05-01, {holder()}, since {held['since']}" in str(err.value)
        assert path.with_suffix(".json").exists(), "the refused one leaves the holder's info"
    assert not path.with_suffix(".json").exists()


def test_the_lock_is_freed_on_exit_even_by_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    with pytest.raises(RuntimeError), file_night_lock(path, "s", "n1"):
        raise RuntimeError("the night failed")
    with file_night_lock(path, "s", "n2"):  # taken again at once
        pass


def test_a_holder_without_its_info_file_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    refused = pytest.raises(AlreadyRunning, match=r"\(holder unknown\)")
    with FileLock(str(path)), refused, file_night_lock(path, "s", "n"):
        pass


@pytest.mark.parametrize("url", ["journal:{}/optuna.journal", "sqlite:///{}/optuna.db"])
def test_local_backends_lock_per_study_beside_their_file(tmp_path: Path, url: str) -> None:
    backend = backend_for(url.format(tmp_path))
    with backend.night_lock("a", "n"):
        assert lock_file(str(backend.file()), "a").exists()
        with backend.night_lock("b", "n"):  # another study's night runs alongside
            pass
        again = backend_for(url.format(tmp_path)).night_lock("a", "n")
        with pytest.raises(AlreadyRunning), again:
            pass
