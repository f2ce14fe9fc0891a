"""The one shape every storage backend has, so that nothing outside hpo/storages/ asks
which kind of storage it holds.

A backend is one kind of Optuna storage (journal file, SQLite, PostgreSQL,
Redis, Optuna's gRPC proxy), known by its URL schemes. It opens the Optuna storage, takes the
locks hpo needs (the short study lock, the schema/start-up lock, the night
lock), says which errors are an outage to wait out, whether it serves one
worker process only, and how its URL is shown to people and to Optuna's own
tools. Adding a backend is one module with one subclass, one entry in
``hpo.storages.registry.BACKENDS`` and one YAML in conf/storage/.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar

from optuna.storages import BaseStorage

from hpo.config import StorageConfig
from hpo.secrets import mask
from hpo.storages.night import unsupported

# One logger for the whole folder, under the name users' logging configs already know.
log = logging.getLogger("hpo.storages")


class Backend:
    """One kind of storage, bound to one URL (and the storage config it came from)."""

    name: ClassVar[str] = "storage"  # for messages: "SQLite", "PostgreSQL", ...
    schemes: ClassVar[tuple[str, ...]] = ()  # URL prefixes this backend serves
    serves_one_worker: ClassVar[bool] = False  # True: a second worker process must be refused
    heartbeats: ClassVar[bool] = False  # True: a dead worker's trial is found by heartbeat
    url_from_parts: ClassVar[bool] = False  # True: storage.host/port are this URL's own parts
    optuna_tools: ClassVar[bool] = True  # False: Optuna's CLI and optuna-dashboard cannot open it
    # False: a process forked after this storage was opened cannot open its own (gRPC's
    # channels and threads do not survive fork), so workers=N starts its workers as commands
    survives_fork: ClassVar[bool] = True

    def __init__(self, url: str, cfg: StorageConfig | None = None) -> None:
        self.url = url.strip()
        self.cfg = cfg if cfg is not None else StorageConfig(url=self.url)

    @classmethod
    def handles(cls, url: str) -> bool:
        """True when ``url`` is one of this backend's."""
        return url.strip().startswith(cls.schemes)

    @classmethod
    def owns(cls, storage: BaseStorage) -> bool:
        """True when the opened Optuna ``storage`` is of this kind."""
        return False

    def open(self) -> BaseStorage:
        """The Optuna storage; an unreachable store is a UserError naming the fix."""
        raise NotImplementedError

    @classmethod
    def study_lock(cls, storage: BaseStorage, study_name: str) -> AbstractContextManager[None]:
        """The short study-wide lock around "create the study" and "claim a trial"."""
        return contextlib.nullcontext()

    def init_lock(self, name: str) -> AbstractContextManager[None]:
        """Serializes one-time schema creation (``name``: whose tables) on this URL."""
        return contextlib.nullcontext()

    def worker_lock(self, study: str) -> AbstractContextManager[None]:
        """Held for a worker process's whole run on ``study``: where a backend serves one
        worker process, a second one is refused at once (UserError)."""
        return contextlib.nullcontext()

    def night_lock(self, study: str, night: str) -> AbstractContextManager[None]:
        """The lock held for a whole nightly run, never waited for (AlreadyRunning)."""
        return _refused(self.url)

    @classmethod
    def lost_connection(cls, err: BaseException) -> bool:
        """True when ``err`` itself (not its chain) is this backend's outage."""
        return False

    @classmethod
    def trouble(cls, err: BaseException) -> str | None:
        """What went wrong in an outage, for the retry's log line; None: not known here."""
        return None

    def shown(self) -> str:
        """The URL for people: never with a password."""
        return mask(self.url)

    def for_optuna(self) -> str:
        """The URL as Optuna's own tools (``optuna`` CLI, optuna-dashboard) accept it."""
        return self.url

    def file(self) -> Path | None:
        """The local file the store lives in, or None for a server."""
        return None


@contextlib.contextmanager
def _refused(url: str) -> Iterator[None]:
    raise unsupported(url)
    yield  # pragma: no cover - a generator, so that the refusal comes on entering
