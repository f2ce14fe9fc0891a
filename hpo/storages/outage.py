"""Outages: a storage that went away for a while is waited out, not a crash.

A PostgreSQL restart takes seconds; workers retry with backoff and carry on.
Which errors count is each backend's to say (``Backend.lost_connection``);
this module walks an error's chain, asks every backend, and retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import optuna

from hpo.storages.base import log
from hpo.storages.registry import BACKENDS

T = TypeVar("T")


class DatabaseOutage(Exception):
    """The storage's database stayed unreachable for longer than ``storage.outage_limit``."""


def is_outage(err: BaseException) -> bool:
    """True for trouble worth waiting out, not a bad query: a lost or refused database
    connection, a lock held past lock_timeout (an OperationalError too), a session the
    server ended (idle_in_transaction_session_timeout: an InternalError on a connection
    SQLAlchemy invalidates), no free connection in the pool (a TimeoutError), a lost
    Redis connection."""
    return any(kind.lost_connection(e) for e in _chain(err) for kind in BACKENDS)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """The error and the ones it was raised from or while handling: a dropped connection
    can surface as Optuna's StorageInternalError from SQLAlchemy's PendingRollbackError,
    raised while handling the OperationalError that says what happened."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def trouble(err: BaseException) -> str:
    """What went wrong, for the log line of a retried outage."""
    if isinstance(err, optuna.exceptions.StorageInternalError):
        err = err.__cause__ or err
    for kind in BACKENDS:
        said = kind.trouble(err)
        if said:
            return said
    return "database unreachable"


def retrying(call: Callable[[], T], limit: float, what: str) -> T:
    """``call()``, retried with backoff (0.5 s doubling to 5 s) while the database is down.

    After ``limit`` seconds of outage it raises DatabaseOutage: the worker
    ends with one clear line, and what was already stored stays stored.
    """
    started = time.monotonic()
    delay = 0.5
    while True:
        try:
            return call()
        except Exception as err:
            if not is_outage(err):
                raise
            waited = time.monotonic() - started
            if waited >= limit:
                raise DatabaseOutage(
                    f"the database has been unreachable for {waited:.0f} s while {what}: "
                    "check that it is running, then run the same command to resume "
                    "(storage.outage_limit sets how long workers wait)"
                ) from None
            if delay == 0.5:
                log.warning("%s while %s; retrying for up to %.0f s", trouble(err), what, limit)
            time.sleep(min(delay, max(limit - waited, 0.1)))
            delay = min(delay * 2, 5.0)
