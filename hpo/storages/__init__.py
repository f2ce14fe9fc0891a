"""Optuna storages from one URL, as a concept folder: one ``Backend`` per kind of storage.

``journal:PATH``    Optuna's journal file (the default; several local processes)
``sqlite:///PATH``  an SQLite file through SQLAlchemy (one worker process)
``postgresql://..`` PostgreSQL through SQLAlchemy (psycopg), for many machines; with
                    ``storage.url`` empty, built from storage.host/port/database/user
``redis://..``      Optuna's journal on a Redis server, for many machines
``grpc://HOST:PORT`` Optuna's gRPC storage proxy (``python -m hpo.storages.proxy``) in front
                    of PostgreSQL: many workers, few database connections

The functions here are what the rest of hpo calls: they pick the backend
(``registry``) so that no code outside this folder branches on a URL prefix
or on an Optuna storage class.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages.base import Backend, log
from hpo.storages.heartbeat import MAX_RETRY, StaleTrials, max_retry
from hpo.storages.outage import DatabaseOutage, is_outage, retrying
from hpo.storages.registry import (
    BACKENDS,
    backend_for,
    backend_for_config,
    find_backend,
    kind_of,
)
from hpo.storages.url import given_parts, storage_url

__all__ = [
    "BACKENDS",
    "MAX_RETRY",
    "Backend",
    "DatabaseOutage",
    "StaleTrials",
    "backend_for",
    "backend_for_config",
    "backend_name",
    "display_url",
    "init_lock",
    "is_memory",
    "is_outage",
    "mask",
    "max_retry",
    "open_storage",
    "optuna_url",
    "retrying",
    "serves_one_worker",
    "storage_file",
    "storage_line",
    "storage_url",
    "study_lock",
    "survives_fork",
    "worker_lock",
]


def open_storage(cfg: StorageConfig) -> BaseStorage:
    """The Optuna storage for ``cfg`` (see ``storage_url``); an unreachable database is a
    user error."""
    backend = backend_for_config(cfg)
    parts = given_parts(cfg)
    if parts and (cfg.url or "").strip() and not backend.url_from_parts:
        log.warning(
            "storage.url is set (HPO_STORAGE_URL?), so storage.%s %s ignored: "
            "empty it (storage.url='') to use the parts",
            "/".join(parts),
            "is" if len(parts) == 1 else "are",
        )
    return backend.open()


def study_lock(storage: BaseStorage, study_name: str) -> AbstractContextManager[None]:
    """A short study-wide lock around "create the study" and "count, then ask for a trial".

    Held by every worker in turn, it makes the budget exact (no n + workers - 1
    overshoot), keeps grid points from being handed out twice, and lets one
    worker create the study and its MLflow parent run while the others wait.
    Each backend takes its own kind (see its module); a storage without one
    (in memory) is not locked.
    """
    kind = kind_of(storage)
    return kind.study_lock(storage, study_name) if kind else contextlib.nullcontext()


def init_lock(url: str, name: str) -> AbstractContextManager[None]:
    """Serialize one-time schema creation (Optuna's or MLflow's tables) on ``url``:
    processes starting together on an empty database would otherwise race on CREATE
    TABLE and fail. Any URL: one no backend knows (an MLflow server) needs no lock."""
    backend = find_backend(url)
    return backend.init_lock(name) if backend else contextlib.nullcontext()


def worker_lock(cfg: StorageConfig, study: str) -> AbstractContextManager[None]:
    """Held for this process's whole run on ``study`` (see ``Backend.worker_lock``)."""
    return backend_for_config(cfg).worker_lock(study)


def serves_one_worker(url: str) -> bool:
    """True when the storage at ``url`` cannot serve several worker processes (SQLite)."""
    backend = find_backend(url)
    return backend is not None and backend.serves_one_worker


def survives_fork(cfg: StorageConfig) -> bool:
    """True when worker processes forked from this one can open the storage themselves."""
    return backend_for_config(cfg).survives_fork


def backend_name(url: str) -> str:
    """What kind of storage ``url`` is, for messages ("SQLite", "PostgreSQL", ...)."""
    backend = find_backend(url)
    return backend.name if backend else "storage"


def display_url(cfg: StorageConfig) -> str:
    """The storage's URL (``storage_url``) for people: never with a password."""
    try:
        url = storage_url(cfg)
    except UserError:
        return "(no storage.url)"
    backend = find_backend(url)
    return backend.shown() if backend else mask(url)


def storage_line(cfg: StorageConfig) -> str:
    """The storage for the summary, and how Optuna's own CLI and optuna-dashboard open it
    (they refuse hpo's ``journal:`` prefix); never with a password."""
    shown = display_url(cfg)
    try:
        url = mask(optuna_url(storage_url(cfg)))
    except UserError:
        return shown
    backend = find_backend(url)
    if backend is not None and not backend.optuna_tools:
        return f"{shown}  (Optuna's CLI and optuna-dashboard: give them the database it serves)"
    return f"{shown}  (optuna studies --storage {url}; optuna-dashboard {url})"


def optuna_url(url: str) -> str:
    """``url`` as Optuna's own tools accept it (``optuna`` CLI, optuna-dashboard)."""
    backend = find_backend(url)
    return backend.for_optuna() if backend else url


def storage_file(url: str) -> Path | None:
    """The local file a store lives in (journal, SQLite), or None for a server."""
    backend = find_backend(url)
    return backend.file() if backend else None


def is_memory(storage: BaseStorage) -> bool:
    return isinstance(storage, optuna.storages.InMemoryStorage)
