"""One table of backends: the lookups by URL and by opened storage, and what they answer."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storages import (
    backend_for,
    init_lock,
    is_memory,
    open_storage,
    serves_one_worker,
    storage_file,
    study_lock,
)
from hpo.storages.grpc import GrpcProxy
from hpo.storages.journal import JournalFile
from hpo.storages.postgres import PostgreSQL
from hpo.storages.rdb import RDB
from hpo.storages.redis import Redis
from hpo.storages.registry import BACKENDS, find_backend, kind_of
from hpo.storages.sqlite import SQLite


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("journal:optuna.journal", JournalFile),
        ("  sqlite:///optuna.db\n", SQLite),
        ("postgresql://u@h/db", PostgreSQL),
        ("postgresql+psycopg://u@h/db", PostgreSQL),
        ("redis://127.0.0.1:6379/0", Redis),
        ("rediss://cache:6380/2", Redis),
        ("mysql://u@h/db", RDB),
        ("grpc://proxy:13000", GrpcProxy),
    ],
)
def test_the_backend_is_picked_by_scheme(url: str, kind: type) -> None:
    assert type(backend_for(url)) is kind


def test_unsupported_scheme_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError, match="is not supported: use journal:PATH") as err:
        open_storage(StorageConfig(url="mongodb://u:hunter2@localhost/0"))
    assert "hunter2" not in str(err.value)
    assert find_backend("http://mlflow:5000") is None


def test_url_whitespace_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "optuna.journal"
    storage = open_storage(StorageConfig(url=f"  journal:{path}\n"))
    optuna.create_study(study_name="s", storage=storage)
    assert path.is_file()


def test_only_sqlite_serves_one_worker_only() -> None:
    assert serves_one_worker(" sqlite:///optuna.db")
    for url in ("journal:j", "postgresql://h/db", "redis://h:6379/0", "grpc://p", "http://mlflow"):
        assert not serves_one_worker(url)


def test_the_local_file_of_a_store() -> None:
    assert storage_file("sqlite:///runs/mlflow.db") == Path("runs/mlflow.db")
    assert storage_file("journal://runs/optuna.journal") == Path("runs/optuna.journal")
    assert storage_file("postgresql://h/db") is None
    assert storage_file("http://mlflow:5000") is None


def test_in_memory_storage_is_recognised_and_not_locked(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    assert is_memory(storage) and kind_of(storage) is None
    assert not is_memory(open_storage(StorageConfig(url=f"journal:{tmp_path / 'j'}")))
    with study_lock(storage, "s"), study_lock(storage, "s"):
        study = optuna.create_study(study_name="s", storage=storage)
    assert study.study_name == "s"


def test_init_lock_on_a_url_no_backend_knows_is_no_lock() -> None:
    with init_lock("http://mlflow:5000", "mlflow-schema"), init_lock("file:./mlruns", "x"):
        pass


def test_every_backend_module_is_found_and_subclasses_are_asked_before_their_bases() -> None:
    """A new backend is one module here: nothing lists it, and it never shadows a subclass."""
    assert set(BACKENDS) == {JournalFile, SQLite, PostgreSQL, Redis, RDB, GrpcProxy}
    for i, kind in enumerate(BACKENDS):
        assert not any(issubclass(later, kind) for later in BACKENDS[i + 1 :]), kind
