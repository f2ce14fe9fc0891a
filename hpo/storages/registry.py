"""The backends, found rather than listed, and the lookups that pick one by URL or storage.

Adding a backend is one module in this folder with a ``Backend`` subclass (and
one YAML in conf/storage/): every module here is imported once and each
``Backend`` subclass defined in one is a backend. Where schemes or storage
classes overlap, a subclass is asked before its base (SQLite and PostgreSQL
before the general SQL class they extend).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from optuna.storages import BaseStorage

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages.base import Backend
from hpo.storages.url import storage_url


def discover() -> tuple[type[Backend], ...]:
    """Every ``Backend`` subclass defined in a module of hpo/storages, subclasses first."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)], "hpo.storages."):
        importlib.import_module(module.name)
    found: list[type[Backend]] = []
    stack = list(Backend.__subclasses__())
    while stack:
        kind = stack.pop()
        stack.extend(kind.__subclasses__())
        if kind.__module__.startswith("hpo.storages.") and kind not in found:
            found.append(kind)
    return tuple(sorted(found, key=lambda kind: (-len(kind.__mro__), kind.__name__)))


BACKENDS: tuple[type[Backend], ...] = discover()


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
            "sqlite:///PATH, postgresql://USER@HOST/DB, redis://HOST:6379/0 or grpc://HOST:13000"
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
