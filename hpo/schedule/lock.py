"""One nightly run of a study at a time: a lock held for the whole night, never waited for.

A second trigger (cron firing again, a manual run, another machine) must not
queue behind the first: it exits at once, saying who holds the lock. How the
lock is held is the storage backend's (``Backend.night_lock``): PostgreSQL a
session-level advisory lock, local files (journal, SQLite) an OS file lock
beside the storage file; see hpo/storages/.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from hpo.storages.night import AlreadyRunning, holder, unsupported
from hpo.storages.registry import find_backend

__all__ = ["AlreadyRunning", "holder", "night_lock"]


def night_lock(storage_url: str, study: str, night: str) -> AbstractContextManager[None]:
    """Hold the nightly lock of ``study`` (the undated name) or raise AlreadyRunning."""
    url = storage_url.strip()
    backend = find_backend(url)
    if backend is None:
        raise unsupported(url)
    return backend.night_lock(study, night)
