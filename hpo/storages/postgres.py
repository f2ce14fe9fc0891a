"""PostgreSQL through SQLAlchemy and psycopg (3): many workers on many machines.

Every lock is an advisory lock, so it works across machines and the server
frees it when the holder's session ends. That end is bounded: the server's
TCP keepalives notice a silent peer after KEEPALIVE_IDLE + KEEPALIVE_INTERVAL
* KEEPALIVE_COUNT seconds, and IDLE_IN_TRANSACTION ends a session that holds
a transaction open and silent. Waiters give up after LOCK_TIMEOUT and retry
(``retrying``), so none is stuck forever. A claim holds the lock for tens of
milliseconds; the night lock holds a session-level lock all night.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages.night import holder, refusal
from hpo.storages.rdb import RDB

CONNECT_TIMEOUT = 10  # seconds to open a connection
KEEPALIVE_IDLE = 30  # seconds of silence before TCP keepalive probes (client and server)
KEEPALIVE_INTERVAL = 10  # seconds between probes
KEEPALIVE_COUNT = 3  # unanswered probes before the connection counts as dead
LOCK_TIMEOUT = 60.0  # seconds a statement waits for a lock (the study lock too), then fails
IDLE_IN_TRANSACTION = 120.0  # seconds a session may keep a transaction open doing nothing
LOCK_NOT_AVAILABLE = "55P03"  # the SQLSTATEs of a lock_timeout
IDLE_IN_TRANSACTION_TIMEOUT = "25P03"  # and of an idle_in_transaction_session_timeout


class PostgreSQL(RDB):
    name = "PostgreSQL"
    schemes = ("postgresql",)
    pool_size = 2  # connections kept open per process (the gRPC proxy keeps its own number)
    max_overflow = 2  # and opened beyond them as needed, closed when given back

    @classmethod
    def owns(cls, storage: BaseStorage) -> bool:
        return isinstance(storage, RDBStorage) and storage.engine.dialect.name == "postgresql"

    def engine_url(self) -> str:
        return psycopg_url(self.url)

    def engine_kwargs(self, url: str) -> dict[str, Any]:
        return {
            "pool_pre_ping": True,
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "connect_args": pg_connect_args(url, timeouts=True),
        }

    @classmethod
    def study_lock(cls, storage: BaseStorage, study_name: str) -> AbstractContextManager[None]:
        assert isinstance(storage, RDBStorage)
        return _xact_lock(storage.engine, lock_key(study_name))

    def init_lock(self, name: str) -> AbstractContextManager[None]:
        return _schema_lock(psycopg_url(self.url), name)

    def night_lock(self, study: str, night: str) -> AbstractContextManager[None]:
        return _night_lock(self.url, study, night)

    @classmethod
    def trouble(cls, err: BaseException) -> str | None:
        sqlstate = getattr(getattr(err, "orig", None), "sqlstate", None)
        if sqlstate == LOCK_NOT_AVAILABLE:
            return "a database lock (the study lock?) stayed taken past lock_timeout"
        if sqlstate == IDLE_IN_TRANSACTION_TIMEOUT:
            return "the server ended a silent transaction (idle_in_transaction_session_timeout)"
        return None

    def for_optuna(self) -> str:
        return psycopg_url(self.url)


def psycopg_url(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; hpo installs psycopg (3)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def pg_connect_args(url: str, timeouts: bool) -> dict[str, Any]:
    """libpq parameters for PostgreSQL connections: a connect timeout, TCP keepalives on
    both ends and, with ``timeouts``, lock_timeout and idle_in_transaction_session_timeout.

    What the URL's query or PGOPTIONS already set wins over these defaults.
    """
    query = make_url(url).query
    args: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
    }
    args = {name: value for name, value in args.items() if name not in query}
    settings: dict[str, int | str] = {  # the server's end: a vanished client's session ends
        "tcp_keepalives_idle": KEEPALIVE_IDLE,
        "tcp_keepalives_interval": KEEPALIVE_INTERVAL,
        "tcp_keepalives_count": KEEPALIVE_COUNT,
    }
    if timeouts:
        settings["lock_timeout"] = f"{round(LOCK_TIMEOUT * 1000)}ms"
        settings["idle_in_transaction_session_timeout"] = f"{round(IDLE_IN_TRANSACTION * 1000)}ms"
    options = [" ".join(f"-c {name}={value}" for name, value in settings.items())]
    # later -c settings win: the user's own options (PGOPTIONS, ?options=) go last
    for own in (os.environ.get("PGOPTIONS"), query.get("options")):
        if isinstance(own, str) and own.strip():
            options.append(own.strip())
    args["options"] = " ".join(options)
    return args


def lock_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key from the study name."""
    digest = hashlib.sha256(f"hpo:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def night_key(study: str) -> int:
    """A signed 64-bit advisory-lock key, apart from the per-study keys (``lock_key``)."""
    digest = hashlib.sha256(f"hpo-nightly:{study}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _xact_lock(engine: Engine, key: int) -> Iterator[None]:
    """A transaction-level advisory lock: freed at commit, or when the session ends."""
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield


@contextlib.contextmanager
def _schema_lock(url: str, name: str) -> Iterator[None]:
    # keepalives only: creating tables may take minutes while waiters queue up
    engine = create_engine(
        url, poolclass=NullPool, connect_args=pg_connect_args(url, timeouts=False)
    )
    try:
        with _xact_lock(engine, lock_key(name)):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def _night_lock(url: str, study: str, night: str) -> Iterator[None]:
    """A session-level advisory lock on a connection held open for the night."""
    url = psycopg_url(url)
    name = f"hpo-nightly {night} {holder()}"[:63]  # shown to others in pg_stat_activity
    engine = create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",  # no transaction left open all night
        # keepalives (no lock or idle timeouts: the session idles all night holding the lock)
        connect_args={**pg_connect_args(url, timeouts=False), "application_name": name},
    )
    key = night_key(study)
    try:
        connection = engine.connect()
    except Exception as err:
        engine.dispose()
        raise UserError(
            f"cannot open storage {mask(url)} for the nightly lock "
            f"({mask(str(err).splitlines()[0])}): check storage.url and that the database is up"
        ) from None
    try:
        # exempt from a server-wide idle_session_timeout (14+), which would free the lock mid-night
        if (connection.dialect.server_version_info or (0,)) >= (14,):
            connection.execute(text("SET idle_session_timeout = 0"))
        locked = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not locked:
            raise refusal(study, _holder(connection, key))
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        connection.close()
        engine.dispose()


def _holder(connection: Connection, key: int) -> str:
    """Who holds the advisory lock ``key``: PostgreSQL splits a bigint key in two oids."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = connection.execute(
        text(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
            "AND l.objsubid = 1"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
    ).first()
    if row is None:
        return "holder unknown"
    name, addr, start = row
    where = f" from {addr}" if addr else ""
    return f"{name or 'a session'}{where}, connected since {start:%Y-%m-%dT%H:%M:%S%z}"
