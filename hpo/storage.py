"""Optuna storages from one URL, URLs shown without passwords, and the study-wide lock.

``journal:PATH``    Optuna's journal file (the default; several local processes)
``sqlite:///PATH``  an SQLite file through SQLAlchemy
``postgresql://..`` PostgreSQL through SQLAlchemy (psycopg), for many machines
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hpo.config import StorageConfig
from hpo.errors import UserError

_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?P<tail>@)", re.I)


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
    raise UserError(
        f"storage.url '{mask(url)}' is not supported: use journal:PATH, "
        "sqlite:///PATH or postgresql://USER@HOST/DB"
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
    it works across machines and is released if the worker dies. Local files
    (journal, SQLite): a file lock beside the file.
    """
    if isinstance(storage, RDBStorage) and storage.engine.dialect.name == "postgresql":
        with storage.engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(study_name)}
            )
            yield
        return
    path = _lock_path(storage, study_name)
    if path is None:
        yield
        return
    with FileLock(str(path)):
        yield


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
