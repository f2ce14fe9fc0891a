"""The one table of backends, and the lookups that pick one by URL or by opened storage.

Adding a backend: one module with a ``Backend`` subclass, one entry here, one
YAML in conf/storage/. Order matters only where schemes or storage classes
overlap: the general SQL class comes last.
"""

from __future__ import annotations

from optuna.storages import BaseStorage

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages.base import Backend
from hpo.storages.journal import JournalFile
from hpo.storages.postgres import PostgreSQL
from hpo.storages.rdb import RDB
from hpo.storages.redis import Redis
from hpo.storages.sqlite import SQLite
from hpo.storages.url import storage_url

BACKENDS: tuple[type[Backend], ...] = (JournalFile, SQLite, PostgreSQL, Redis, RDB)


def find_backend(url: str, cfg: StorageConfig | None = None) -> Backend | None:
    """The backend serving ``url``, or None for a URL no backend knows."""
    for kind in BACKENDS:
        if kind.handles(url):
            return kind(url, cfg)
    return None


def backend_for(url: str, cfg: StorageConfig | None = None) -> Backend:
    """The backend serving ``url``; an unknown scheme is a UserError listing the known."""
    backend = find_backend(url, cfg)
    if backend is None:
        raise UserError(
            f"storage.url '{mask(url)}' is not supported: use journal:PATH, "
            "sqlite:///PATH, postgresql://USER@HOST/DB or redis://HOST:6379/0"
        )
    return backend


def backend_for_config(cfg: StorageConfig) -> Backend:
    """The backend of ``storage_url(cfg)``, carrying ``cfg`` (heartbeats, retries)."""
    return backend_for(storage_url(cfg), cfg)


def kind_of(storage: BaseStorage) -> type[Backend] | None:
    """The backend class of an opened Optuna storage, or None (in memory, unknown)."""
    for kind in BACKENDS:
        if kind.owns(storage):
            return kind
    return None
