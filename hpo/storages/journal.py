"""Optuna's journal file (``journal:PATH``): the default, for several processes on one machine.

One append-only file, cheaper per trial than SQLite (docs/benchmarks.md). The locks
are OS file locks beside the file, which every process opening the same
path shares and the kernel frees when a holder dies.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from filelock import FileLock
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from hpo.storages.base import Backend
from hpo.storages.night import file_night_lock, lock_file


class JournalFile(Backend):
    name = "journal file"
    schemes = ("journal:",)

    @classmethod
    def owns(cls, storage: BaseStorage) -> bool:
        return isinstance(storage, JournalStorage) and isinstance(
            storage._backend, JournalFileBackend
        )

    def file(self) -> Path:
        return Path(self.url.removeprefix("journal:").removeprefix("//"))

    def open(self) -> JournalStorage:
        path = self.file()
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = JournalFileOpenLock(str(path))
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))

    @classmethod
    def study_lock(cls, storage: BaseStorage, study_name: str) -> AbstractContextManager[None]:
        backend = storage._backend if isinstance(storage, JournalStorage) else None
        if not isinstance(backend, JournalFileBackend):
            return nullcontext()
        return file_lock(f"{backend._file_path}.{safe(study_name)}.lock")

    def night_lock(self, study: str, night: str) -> AbstractContextManager[None]:
        return file_night_lock(lock_file(str(self.file()), study), study, night)

    def for_optuna(self) -> str:
        return str(self.file())


def safe(name: str) -> str:
    """``name`` as part of a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """An OS file lock on ``path``, waited for: shared by every process, freed at death."""
    with FileLock(path):
        yield
