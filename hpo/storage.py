"""Optuna storages from one URL, URLs shown without passwords, and the study-wide lock.

``journal:PATH``    Optuna's journal file (the default; several local processes)
``sqlite:///PATH``  an SQLite file through SQLAlchemy
``postgresql://..`` PostgreSQL through SQLAlchemy (psycopg), for many machines
``redis://..``      Optuna's journal on a Redis server, for many machines
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
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
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hpo.config import StorageConfig
from hpo.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")
_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<tail>@)", re.I)


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", text)


def open_storage(cfg: StorageConfig) -> BaseStorage:
    """The Optuna storage for ``cfg.url``; an unreachable database is a user error."""
    url = cfg.url.strip()
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = JournalFileOpenLock(str(path))
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        return _rdb(url, cfg)
    if url.startswith(("redis://", "rediss://")):
        return _redis(url, cfg)
    raise UserError(
        f"storage.url '{mask(url)}' is not supported: use journal:PATH, "
        "sqlite:///PATH, postgresql://USER@HOST/DB or redis://HOST:6379/0"
    )


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


def _rdb(url: str, cfg: StorageConfig) -> RDBStorage:
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        engine_kwargs = {
            "pool_pre_ping": True,
            "pool_size": 2,
            "max_overflow": 2,
            "connect_args": {"connect_timeout": 10},
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
            f"cannot open storage {mask(url)} ({reason}): check storage.url "
            "and that the database is running"
        ) from None


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
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})
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
    url = cfg.url
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        return make_url(url).render_as_string(hide_password=True)
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
    """True for a lost or refused database connection (worth waiting out), not a bad query."""
    if isinstance(err, optuna.exceptions.StorageInternalError):
        err = err.__cause__ or err
    return isinstance(err, exc.OperationalError | exc.InterfaceError) or _is_redis_outage(err)


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
                log.warning("database unreachable while %s; retrying for up to %.0f s", what, limit)
            time.sleep(min(delay, max(limit - waited, 0.1)))
            delay = min(delay * 2, 5.0)
