"""Optuna storages from one URL, URLs shown without passwords, and the study-wide lock.

``journal:PATH``    Optuna's journal file (the default; several local processes)
``sqlite:///PATH``  an SQLite file through SQLAlchemy
``postgresql://..`` PostgreSQL through SQLAlchemy (psycopg), for many machines; with
                    ``storage.url`` empty, built from storage.host/port/database/user
``redis://..``      Optuna's journal on a Redis server, for many machines
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import optuna
from filelock import FileLock
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import (
    JournalFileBackend,
    JournalFileOpenLock,
    JournalRedisBackend,
)
from optuna.trial import FrozenTrial
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from hpo.config import StorageConfig
from hpo.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")
PARTS = ("host", "port", "database", "user")  # storage.* keys that make a PostgreSQL URL
NO_URL = (
    "storage.url is empty: export HPO_STORAGE_URL=postgresql://USER@HOST:5432/DB, "
    "or give storage.host=HOST storage.database=DB (and storage.port, storage.user); "
    "the password goes in PGPASSWORD or ~/.pgpass"
)
# PostgreSQL connections. The study lock is a transaction-level advisory lock:
# if its holder's machine vanishes, the server frees it when the holder's
# session ends, which these bound: the server's TCP keepalives notice a silent
# peer after KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT seconds, and
# IDLE_IN_TRANSACTION ends a session that holds a transaction open and silent.
# Waiters give up after LOCK_TIMEOUT and retry (``retrying``), so none is stuck
# forever. A claim holds the lock for tens of milliseconds.
CONNECT_TIMEOUT = 10  # seconds to open a connection
KEEPALIVE_IDLE = 30  # seconds of silence before TCP keepalive probes (client and server)
KEEPALIVE_INTERVAL = 10  # seconds between probes
KEEPALIVE_COUNT = 3  # unanswered probes before the connection counts as dead
LOCK_TIMEOUT = 60.0  # seconds a statement waits for a lock (the study lock too), then fails
IDLE_IN_TRANSACTION = 120.0  # seconds a session may keep a transaction open doing nothing
LOCK_NOT_AVAILABLE = "55P03"  # the SQLSTATEs of a lock_timeout
IDLE_IN_TRANSACTION_TIMEOUT = "25P03"  # and of an idle_in_transaction_session_timeout

_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<tail>@)", re.I)


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", text)


def storage_url(cfg: StorageConfig) -> str:
    """``cfg.url``; with it empty, the PostgreSQL URL built from host, port, database, user.

    The built URL never holds a password: libpq (psycopg) reads PGPASSWORD or
    ~/.pgpass by itself. Neither a URL nor a part: a UserError naming both ways.
    """
    url = (cfg.url or "").strip()
    if url:
        return url
    parts = _parts(cfg)
    if not parts:
        raise UserError(NO_URL)
    port = parts.get("port")
    return URL.create(
        "postgresql+psycopg",
        username=parts.get("user"),
        host=parts.get("host"),
        port=int(port) if port is not None else None,
        database=parts.get("database"),
    ).render_as_string(hide_password=False)


def _parts(cfg: StorageConfig) -> dict[str, Any]:
    """The PostgreSQL parts given (not None, not empty) in ``cfg``."""
    given = {name: getattr(cfg, name, None) for name in PARTS}
    return {name: value for name, value in given.items() if value not in (None, "")}


def open_storage(cfg: StorageConfig) -> BaseStorage:
    """The Optuna storage for ``cfg`` (see ``storage_url``); an unreachable database is a
    user error."""
    url = storage_url(cfg)
    parts = _parts(cfg)
    if parts and (cfg.url or "").strip():
        log.warning(
            "storage.url is set (HPO_STORAGE_URL?), so storage.%s %s ignored: "
            "empty it (storage.url='') to use the parts",
            "/".join(parts),
            "is" if len(parts) == 1 else "are",
        )
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = JournalFileOpenLock(str(path))
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        where = "storage.url" if (cfg.url or "").strip() else "storage." + "/".join(PARTS)
        return _rdb(url, cfg, where)
    if url.startswith(("redis://", "rediss://")):
        return _redis(url, cfg)
    raise UserError(
        f"storage.url '{mask(url)}' is not supported: use journal:PATH, "
        "sqlite:///PATH, postgresql://USER@HOST/DB or redis://HOST:6379/0"
    )


MAX_RETRY = 3  # a failed trial's parameters run again at most this often, unless storage.max_retry


def max_retry(study: optuna.Study) -> int:
    """How often a failed trial's parameters are run again: ``storage.max_retry``."""
    stale = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    return stale.max_retry if isinstance(stale, StaleTrials) else MAX_RETRY


class StaleTrials:
    """Called by Optuna for each trial whose heartbeat stopped (its worker died).

    Enqueues the same parameters again (up to ``max_retry`` times, through
    Optuna's RetryHeartbeatStaleTrialCallback) and keeps the failed trials so
    that the runner can close their MLflow runs as KILLED.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.failed: list[FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.retry(study, trial)
        self.failed.append(trial)

    def drain(self) -> list[FrozenTrial]:
        failed, self.failed = self.failed, []
        return failed


def _rdb(url: str, cfg: StorageConfig, where: str = "storage.url") -> RDBStorage:
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        url = psycopg_url(url)
        engine_kwargs = {
            "pool_pre_ping": True,
            "pool_size": 2,
            "max_overflow": 2,
            "connect_args": pg_connect_args(url, timeouts=True),
        }
    try:
        with init_lock(url, "optuna-schema"):
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=cfg.heartbeat_interval,
                grace_period=cfg.grace_period,
                heartbeat_stale_trial_callback=StaleTrials(cfg.max_retry),
            )
    except Exception as err:  # SQLAlchemy wraps every driver's connection error differently
        reason = mask(str(err).splitlines()[0]) if str(err) else type(err).__name__
        raise UserError(
            f"cannot open storage {_shown(url)} ({reason}): check {where} "
            "and that the database is running"
        ) from None


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


def _shown(url: str) -> str:
    """``url`` for messages: without its password, even one make_url cannot parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return mask(url)


def _redis(url: str, cfg: StorageConfig) -> JournalStorage:
    """Optuna's journal on Redis, checked with a PING so that a wrong URL fails up front.

    The key prefix stays Optuna's default, so optuna-dashboard and plain Optuna
    scripts given the same URL see the same studies. Heartbeats live in Redis
    too (hpo/redis_journal.py), so a dead worker's trial is failed and retried
    from any machine, as on PostgreSQL.
    """
    try:
        import redis

        from hpo.redis_journal import RedisJournalStorage
    except ImportError:
        raise UserError(
            "storage.url is a Redis URL but the redis package is missing: pip install redis"
        ) from None
    with warnings.catch_warnings():  # "experimental" since Optuna 3.1; said once per worker
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        backend = JournalRedisBackend(url)
    try:
        backend._redis.ping()
    except redis.RedisError as err:
        raise UserError(
            f"cannot open storage {mask(url)} ({mask(str(err))}): check storage.url "
            "and that Redis is running"
        ) from None
    return RedisJournalStorage(
        backend, cfg.heartbeat_interval, cfg.grace_period, StaleTrials(cfg.max_retry)
    )


@contextlib.contextmanager
def init_lock(url: str, name: str) -> Iterator[None]:
    """Serialize one-time schema creation (Optuna's or MLflow's tables): processes starting
    together on an empty database would otherwise race on CREATE TABLE and fail."""
    if url.startswith("postgresql"):
        url = psycopg_url(url)
        # keepalives only: creating tables may take minutes while waiters queue up
        engine = create_engine(
            url, poolclass=NullPool, connect_args=pg_connect_args(url, timeouts=False)
        )
        try:
            with engine.begin() as connection:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)}
                )
                yield
        finally:
            engine.dispose()
    elif url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.{name}.lock"):
            yield
    else:
        yield


def display_url(cfg: StorageConfig) -> str:
    """The storage's URL (``storage_url``) for people: never with a password."""
    try:
        url = storage_url(cfg)
    except UserError:
        return "(no storage.url)"
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        return _shown(url)
    return mask(url)


@contextlib.contextmanager
def study_lock(storage: BaseStorage, study_name: str) -> Iterator[None]:
    """A short study-wide lock around "create the study" and "count, then ask for a trial".

    Held by every worker in turn, it makes the budget exact (no n + workers - 1
    overshoot), keeps grid points from being handed out twice, and lets one
    worker create the study and its MLflow parent run while the others wait.
    PostgreSQL: a transaction-level advisory lock keyed by the study name, so
    it works across machines and is released if the worker dies. Redis: a
    Redis lock keyed by the study name (see ``redis_lock``). Local files
    (journal, SQLite): a file lock beside the file.
    """
    if isinstance(storage, RDBStorage) and storage.engine.dialect.name == "postgresql":
        with storage.engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(study_name)}
            )
            yield
        return
    client = _redis_client(storage)
    if client is not None:
        with redis_lock(client, f"hpo:lock:{study_name}"):
            yield
        return
    path = _lock_path(storage, study_name)
    if path is None:
        yield
        return
    with FileLock(str(path)):
        yield


REDIS_LOCK_TTL = 10.0  # seconds a dead holder keeps the Redis lock before others may take it


@contextlib.contextmanager
def redis_lock(client: Any, key: str, ttl: float = REDIS_LOCK_TTL) -> Iterator[None]:
    """redis-py's Lock on ``key``, renewed every ttl/3 while held.

    Unlike PostgreSQL's advisory lock, a Redis lock is not tied to a
    connection: a killed holder's lock lives until its TTL expires. A short TTL
    frees it soon after a death; the renewal keeps a slow holder (a first
    MLflow run creating its tables, a sampler with many trials) from losing it.
    """
    lock = client.lock(key, timeout=ttl, sleep=0.01, thread_local=False)
    lock.acquire(blocking=True)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                lock.reacquire()
            except Exception as err:  # lost it (expired, or Redis unreachable): say so
                log.warning("study lock %s could not be renewed: %s", key, mask(str(err)))
                return

    thread = threading.Thread(target=renew, name="hpo-redis-lock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(Exception):  # expired already: nothing left to release
            lock.release()


def _redis_client(storage: BaseStorage) -> Any:
    """The redis-py client of a journal-on-Redis storage, else None."""
    if isinstance(storage, JournalStorage) and isinstance(storage._backend, JournalRedisBackend):
        return storage._backend._redis
    return None


def _lock_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key from the study name."""
    digest = hashlib.sha256(f"hpo:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_path(storage: BaseStorage, study_name: str) -> Path | None:
    if isinstance(storage, JournalStorage):
        backend = storage._backend
        if isinstance(backend, JournalFileBackend):
            return Path(f"{backend._file_path}.{_safe(study_name)}.lock")
    if isinstance(storage, RDBStorage):
        url = make_url(str(storage.engine.url))
        if url.drivername.startswith("sqlite") and url.database:
            return Path(f"{url.database}.{_safe(study_name)}.lock")
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def is_memory(storage: BaseStorage) -> bool:
    return isinstance(storage, optuna.storages.InMemoryStorage)


class DatabaseOutage(Exception):
    """The storage's database stayed unreachable for longer than ``storage.outage_limit``."""


def is_outage(err: BaseException) -> bool:
    """True for trouble worth waiting out, not a bad query: a lost or refused database
    connection, a lock held past lock_timeout (an OperationalError too), a session the
    server ended (idle_in_transaction_session_timeout: an InternalError on a connection
    SQLAlchemy invalidates), or no free connection in the pool (a TimeoutError)."""
    return any(_lost_connection(e) for e in _chain(err))


def _lost_connection(err: BaseException) -> bool:
    if isinstance(err, exc.DBAPIError) and err.connection_invalidated:
        return True
    return isinstance(
        err, exc.OperationalError | exc.InterfaceError | exc.TimeoutError
    ) or _is_redis_outage(err)


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


def _cause(err: BaseException) -> BaseException:
    if isinstance(err, optuna.exceptions.StorageInternalError):
        return err.__cause__ or err
    return err


def _trouble(err: BaseException) -> str:
    """What went wrong, for the log line of a retried outage."""
    err = _cause(err)
    if isinstance(err, exc.TimeoutError):
        return "no database connection free in the pool"
    sqlstate = getattr(getattr(err, "orig", None), "sqlstate", None)
    if sqlstate == LOCK_NOT_AVAILABLE:
        return "a database lock (the study lock?) stayed taken past lock_timeout"
    if sqlstate == IDLE_IN_TRANSACTION_TIMEOUT:
        return "the server ended a silent transaction (idle_in_transaction_session_timeout)"
    return "database unreachable"


def _is_redis_outage(err: BaseException) -> bool:
    try:
        import redis
    except ImportError:
        return False
    return isinstance(err, redis.ConnectionError | redis.TimeoutError)


def retrying(call: Callable[[], T], limit: float, what: str) -> T:
    """``call()``, retried with backoff (0.5 s doubling to 5 s) while the database is down.

    A PostgreSQL restart takes seconds; workers wait it out and carry on.
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
                log.warning("%s while %s; retrying for up to %.0f s", _trouble(err), what, limit)
            time.sleep(min(delay, max(limit - waited, 0.1)))
            delay = min(delay * 2, 5.0)
