"""storage.url, or PostgreSQL from its parts: never a password in the URL built."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from optuna.storages import JournalStorage

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storages import display_url, open_storage, storage_url


def test_parts_make_a_postgres_url_without_a_password() -> None:
    cfg = StorageConfig(url="", host="db.example.org", database="optuna", user="hpo")
    assert storage_url(cfg) == "postgresql+psycopg://hpo@db.example.org/optuna"
    cfg = StorageConfig(url="", host="db", port=6432, database="optuna")
    assert storage_url(cfg) == "postgresql+psycopg://db:6432/optuna"


def test_a_set_url_wins_over_parts(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'j'}"
    cfg = StorageConfig(url=url, host="db.example.org", database="optuna")
    assert storage_url(cfg) == url
    with caplog.at_level(logging.WARNING, logger="hpo.storages"):
        assert isinstance(open_storage(cfg), JournalStorage)
    assert "storage.host/database are ignored" in caplog.text


@pytest.mark.parametrize("url", ["", "  "])
def test_no_url_and_no_parts_is_a_one_line_user_error_naming_both_ways(url: str) -> None:
    with pytest.raises(UserError) as err:
        open_storage(StorageConfig(url=url))
    message = str(err.value)
    assert "\n" not in message
    assert "HPO_STORAGE_URL=postgresql://" in message
    assert "storage.host=" in message and "storage.database=" in message
    assert "PGPASSWORD" in message and ".pgpass" in message
    assert display_url(StorageConfig(url=url)) == "(no storage.url)"


def test_unreachable_parts_are_a_user_error_naming_the_parts() -> None:
    cfg = StorageConfig(url="", host="127.0.0.1", port=1, database="x", user="u")
    with pytest.raises(UserError, match="cannot open storage") as err:
        open_storage(cfg)
    assert "127.0.0.1:1/x" in str(err.value)
    assert "storage.host/port/database/user" in str(err.value)
