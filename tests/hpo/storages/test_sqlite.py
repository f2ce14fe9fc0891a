"""SQLite: one worker process, file locks beside the database, no lock for :memory:."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.errors import UserError
from hpo.storages import init_lock, serves_one_worker
from hpo.storages.registry import backend_for


def test_sqlite_serves_one_worker() -> None:
    assert serves_one_worker("sqlite:///optuna.db")
    assert backend_for("sqlite:///optuna.db").name == "SQLite"


def test_the_schema_lock_is_a_file_beside_the_database(tmp_path: Path) -> None:
    with init_lock(f"sqlite:///{tmp_path / 'sub' / 'mlflow.db'}", "mlflow-schema"):
        assert (tmp_path / "sub" / "mlflow.db.mlflow-schema.lock").exists()
    with init_lock("sqlite:///:memory:", "mlflow-schema"):
        pass


def test_an_in_memory_database_has_no_night_lock() -> None:
    refused = pytest.raises(UserError, match="schedule=nightly cannot lock storage sqlite://")
    with refused, backend_for("sqlite:///:memory:").night_lock("s", "2024-06-01"):
        pass
