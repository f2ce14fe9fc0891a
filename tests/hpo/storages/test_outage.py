"""Outages are waited out, bad queries are not: the classification and the retry loop."""

from __future__ import annotations

import logging

import optuna
import pytest
import redis
from sqlalchemy import exc

from hpo.storages import DatabaseOutage, is_outage, retrying
from hpo.storages.outage import trouble


def test_a_pool_timeout_and_a_lock_timeout_are_outages() -> None:
    assert is_outage(exc.TimeoutError("QueuePool limit of size 2 overflow 2 reached"))
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = exc.TimeoutError()
    assert is_outage(wrapped)
    assert trouble(wrapped) == "no database connection free in the pool"
    assert not is_outage(exc.ProgrammingError("SELECT", {}, Exception("syntax error")))


def test_a_dropped_connection_behind_a_pending_rollback_is_an_outage() -> None:
    """What Optuna raises when the server vanished mid-query (seen in CI): wait it out."""
    dropped = exc.OperationalError("SELECT", {}, Exception("server closed the connection"))
    pending = exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
    pending.__context__ = dropped  # raised while handling it, as SQLAlchemy does
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit")
    wrapped.__cause__ = pending
    assert is_outage(wrapped)

    bad_query = optuna.exceptions.StorageInternalError("commit failed")
    bad_query.__cause__ = exc.ProgrammingError("SELECT", {}, Exception("syntax error"))
    assert not is_outage(bad_query)


def test_a_lost_redis_connection_is_an_outage_a_redis_error_is_not() -> None:
    assert is_outage(redis.ConnectionError("Connection refused"))
    assert is_outage(redis.TimeoutError("Timeout reading from socket"))
    assert not is_outage(redis.ResponseError("WRONGTYPE"))


def test_an_outage_is_retried_until_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return "done"

    with caplog.at_level(logging.WARNING, logger="hpo.storages"):
        assert retrying(flaky, 30, "asking for a trial") == "done"
    assert "database unreachable while asking for a trial; retrying for up to 30 s" in caplog.text


def test_an_outage_past_the_limit_is_one_clear_error() -> None:
    def down() -> None:
        raise exc.OperationalError("SELECT", {}, Exception("connection refused"))

    with pytest.raises(DatabaseOutage, match="unreachable for 0 s while finishing: check"):
        retrying(down, 0, "finishing")


def test_a_bad_query_is_raised_at_once() -> None:
    def bad() -> None:
        raise exc.ProgrammingError("SELECT", {}, Exception("syntax error"))

    with pytest.raises(exc.ProgrammingError):
        retrying(bad, 30, "finishing")
