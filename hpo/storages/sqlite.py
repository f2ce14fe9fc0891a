"""SQLite through SQLAlchemy (``sqlite:///PATH``): one file, one worker process.

SQLite locks the whole file per write, so several processes get "database is
locked": it serves one worker (``serves_one_worker``). Its locks are OS file
locks beside the database file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy.engine import make_url

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
