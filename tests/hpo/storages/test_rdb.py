"""The general SQL backend (RDB): what it serves, its outage classes, its messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from sqlalchemy import create_engine, exc, text

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storages.rdb import RDB, shown
from hpo.storages.registry import backend_for
from hpo.storages.url import PARTS
from tests.hpo.pg import admin, new_database, sqlalchemy_url

MYSQL = "mysql://alice:hunter2@127.0.0.1:1/optuna"


def test_a_mysql_url_is_served_by_the_general_sql_backend() -> None:
    backend = backend_for(MYSQL)
    assert type(backend) is RDB
    assert backend.heartbeats and not backend.serves_one_worker
    assert backend.shown() == "mysql://alice:***@127.0.0.1:1/optuna"
    assert backend.for_optuna() == MYSQL and backend.file() is None
    assert type(backend_for("mysql+pymysql://u@h/db")) is RDB


def test_opening_without_the_driver_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError, match="cannot open storage mysql://alice:\\*\\*\\*@") as err:
        RDB(MYSQL).open()
    assert "hunter2" not in str(err.value) and "check storage.url" in str(err.value)


def test_where_names_the_config_keys_the_url_came_from() -> None:
    assert RDB(MYSQL, StorageConfig(url=MYSQL)).where() == "storage.url"
    assert RDB(MYSQL, StorageConfig(url="")).where() == "storage." + "/".join(PARTS)


def test_it_owns_any_rdb_storage_and_nothing_else(tmp_path: Path) -> None:
    assert RDB.owns(RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    assert not RDB.owns(journal)


def test_outages_are_lost_connections_and_a_full_pool() -> None:
    lost = exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert RDB.lost_connection(lost) and RDB.trouble(lost) is None
    assert RDB.lost_connection(exc.InterfaceError("SELECT 1", {}, Exception("closed")))
    invalidated = exc.DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True)
    assert RDB.lost_connection(invalidated)
    full = exc.TimeoutError("QueuePool limit reached")
    assert RDB.lost_connection(full)
    assert RDB.trouble(full) == "no database connection free in the pool"


def test_other_errors_are_not_outages_not_even_with_one_in_their_chain() -> None:
    assert not RDB.lost_connection(exc.IntegrityError("INSERT", {}, Exception("duplicate")))
    assert not RDB.lost_connection(exc.DBAPIError("SELECT 1", {}, Exception("x")))
    try:
        try:
            raise exc.OperationalError("SELECT 1", {}, Exception("gone"))
        except exc.OperationalError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert not RDB.lost_connection(outer), "the chain is the caller's to walk"


def test_shown_masks_a_password_even_in_a_url_sqlalchemy_cannot_parse() -> None:
    assert shown("mysql://alice:hunter2@db:notaport/x") == "mysql://alice:***@db:notaport/x"
    assert shown("sqlite:///a.db") == "sqlite:///a.db"


@pytest.mark.postgres
def test_a_connection_killed_by_the_server_is_a_lost_connection() -> None:
    with new_database() as url:
        engine = create_engine(sqlalchemy_url(url))
        try:
            with engine.connect() as connection:
                pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
                with admin() as other:
                    other.execute("SELECT pg_terminate_backend(%s)", (pid,))
                with pytest.raises(exc.DBAPIError) as err:
                    connection.execute(text("SELECT 1"))
            assert RDB.lost_connection(err.value)
        finally:
            engine.dispose()
