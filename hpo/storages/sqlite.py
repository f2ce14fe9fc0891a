"""SQLite through SQLAlchemy (``sqlite:///PATH``): one file, one worker process.

SQLite locks the whole file per write, so several processes get "database is
locked": it serves one worker process per study (``serves_one_worker``), held
to it by ``worker_lock`` for the whole run. Its locks are OS file locks beside
the database file, freed when their process dies.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from filelock import FileLock, Timeout
from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy.engine import make_url

from hpo.errors import UserError
from hpo.storages.journal import file_lock, safe
from hpo.storages.night import file_night_lock, lock_file
from hpo.storages.rdb import RDB


class SQLite(RDB):
    name = "SQLite"
    schemes = ("sqlite:",)
    serves_one_worker = True

    @classmethod
    def owns(cls, storage: BaseStorage) -> bool:
        return isinstance(storage, RDBStorage) and storage.engine.dialect.name == "sqlite"

    def file(self) -> Path | None:
        if not self.url.startswith("sqlite:///"):
            return None
        return Path(self.url.removeprefix("sqlite:///"))

    @classmethod
    def study_lock(cls, storage: BaseStorage, study_name: str) -> AbstractContextManager[None]:
        if not isinstance(storage, RDBStorage) or not cls.owns(storage):
            return nullcontext()
        database = make_url(str(storage.engine.url)).database
        if not database:
            return nullcontext()
        return file_lock(f"{database}.{safe(study_name)}.lock")

    def init_lock(self, name: str) -> AbstractContextManager[None]:
        if not self.url.startswith("sqlite:///") or self.url == "sqlite:///:memory:":
            return nullcontext()
        return _schema_lock(Path(self.url.removeprefix("sqlite:///")), name)

    def worker_lock(self, study: str) -> AbstractContextManager[None]:
        path = self.file()
        if path is None or ":memory:" in self.url:
            return nullcontext()
        return _one_worker(Path(f"{path}.{safe(study)}.worker.lock"), study)

    def night_lock(self, study: str, night: str) -> AbstractContextManager[None]:
        if not self.url.startswith("sqlite:///") or ":memory:" in self.url:
            return super().night_lock(study, night)
        path = lock_file(self.url.removeprefix("sqlite:///"), study)
        return file_night_lock(path, study, night)


@contextlib.contextmanager
def _schema_lock(path: Path, name: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(f"{path}.{name}.lock"):
        yield


@contextlib.contextmanager
def _one_worker(path: Path, study: str) -> Iterator[None]:
    """Hold ``path``'s OS lock while this process runs ``study``; refuse at once if another
    process holds it. Taken before the study is opened, so processes started at the same
    moment cannot all pass (a check of RUNNING trials would let them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = path.with_suffix(".pid")
    lock = FileLock(str(path), blocking=False)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(
            f"{_read(holder)} is already running study '{study}' on SQLite, which serves "
            "one worker process: wait for it, or use storage=postgres (many machines) or "
            "storage=local (one machine)"
        ) from None
    try:
        holder.write_text(f"process {os.getpid()} on {socket.gethostname()}")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _read(holder: Path) -> str:
    try:
        return holder.read_text().strip() or "another process"
    except OSError:
        return "another process"
