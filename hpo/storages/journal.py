"""Optuna's journal file (``journal:PATH``): the default, for several processes on one machine.

One append-only file, cheaper per trial than SQLite (docs/benchmarks.md). The locks
are OS file locks beside the file, which every process opening the same
path shares and the kernel frees when a holder dies.

A crash or a full disk during an append leaves half a record at the end. Optuna
skips it when reading, but its next append would glue a record to it, and from
then on no process could read the file. So whoever takes Optuna's append lock
(``MendingLock``: every append, and every open) first sets such a torn tail
aside, into ``PATH.torn-<UTC time>``, with one warning. Anything else that is
not a record (garbage) is a UserError naming the line, and the file is left as
it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file
from optuna.storages.journal._storage import JournalOperation  # private: its op codes

from hpo.errors import UserError
from hpo.storages.base import Backend, log
from hpo.storages.night import file_night_lock, lock_file

OP_CODES = frozenset(int(op) for op in JournalOperation)
CHUNK = 1 << 16  # bytes read at a time, from the end, to find the last line


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
        lock = MendingLock(str(path))
        lock.acquire(opening=True)  # a torn tail set aside, a bad last line refused
        lock.release()
        try:
            return JournalStorage(StateSyncedBackend(str(path), lock_obj=lock))
        except (ValueError, LookupError, TypeError, AssertionError) as err:
            # Optuna's replay tripped (JSONDecodeError, a missing field): garbage inside?
            with path.open("rb") as f:
                bad = first_bad(f, os.fstat(f.fileno()).st_size)
                if bad is None:
                    raise
                raise garbage(path, f, bad) from err

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


# Records written as a trial runs; the trial's next state change syncs them with it.
UNSYNCED_OPS = frozenset(
    int(op)
    for op in (
        JournalOperation.SET_TRIAL_PARAM,
        JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE,
        JournalOperation.SET_TRIAL_USER_ATTR,
        JournalOperation.SET_TRIAL_SYSTEM_ATTR,
    )
)


class StateSyncedBackend(JournalFileBackend):
    """Optuna's journal file, synced to disk at every study and trial state change only.

    Optuna syncs (fsync) after every record: a trial of 9 parameters and two
    attributes syncs 16 times, 10 ms or more of the trial loop on this machine
    (benchmarks/overhead.py), and far more when other processes write to the
    disk. Every record still reaches the file (and so every other process) at
    once; only the sync waits for the trial's next state change (created,
    finished, failed, pruned), which syncs the records before it too. A process
    killed mid-trial loses nothing (the kernel holds what was written); a power
    loss may cost the running trial's latest parameters, and a torn last record
    is set aside by ``MendingLock``.
    """

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if any(entry.get("op_code") not in UNSYNCED_OPS for entry in logs):
            super().append_logs(logs)
            return
        with get_lock_file(self._lock):
            text = "\n".join(json.dumps(entry, separators=(",", ":")) for entry in logs) + "\n"
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))


class MendingLock(JournalFileOpenLock):
    """Optuna's append lock on the journal (the same ``PATH.lock``) that, once taken, makes
    the file end in a whole record: nothing is ever appended after half a one."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = Path(path)

    def acquire(self, opening: bool = False) -> bool:
        """Take the lock, then mend the tail (``opening``: also refuse a bad last line)."""
        super().acquire()
        try:
            mend(self.path, opening)
        except BaseException:
            self.release()
            raise
        return True


def mend(path: Path, opening: bool = False) -> None:
    """Make ``path`` end in a whole record, its append lock held.

    An unterminated last record gets its newline; half a record (a torn write) is
    moved to a side file, unless there is garbage before it. Appends look at one
    byte; opening also checks the last line.
    """
    try:
        f = path.open("r+b")
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        if not opening:
            f.seek(end - 1)
            if f.read(1) == b"\n":
                return  # before an append, as good as always: one byte read
        start, line = last_line(f, end)
        whole = line.endswith(b"\n")
        if is_record(line):
            if not whole:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
                log.info("%s: ended its last record with the missing newline", path)
            return
        bad = first_bad(f, start)
        if bad is None and (whole or not torn(line)):
            bad = start  # not a record, and not half of one either
        if bad is not None:
            raise garbage(path, f, bad)
        side = set_aside(path, line)
        f.truncate(start)
        os.fsync(f.fileno())
        log.warning(
            "%s ended in half a record (a crash or a full disk while writing?): "
            "moved its %d bytes to %s, every whole record is kept",
            path,
            len(line),
            side,
        )


def last_line(f: BinaryIO, end: int) -> tuple[int, bytes]:
    """Where the last line of ``f`` (``end`` bytes long) starts, and its bytes."""
    tail = b""
    start = end
    while start > 0:
        step = min(CHUNK, start)
        start -= step
        f.seek(start)
        tail = f.read(step) + tail
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0:
            return start + cut + 1, tail[cut + 1 :]
    return 0, tail


def is_record(line: bytes) -> bool:
    """True when ``line`` is one of Optuna's journal records (JSON with a known op_code)."""
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return False
    return isinstance(record, dict) and type(op := record.get("op_code")) is int and op in OP_CODES


def torn(line: bytes) -> bool:
    """True when ``line`` is not JSON: half a record never is, wherever it was cut."""
    try:
        json.loads(line)
    except ValueError:
        return True
    return False


def first_bad(f: BinaryIO, end: int) -> int | None:
    """Where the first whole line before byte ``end`` that is not a record starts, if any."""
    f.seek(0)
    offset = 0
    for line in f:
        if offset + len(line) > end or not line.endswith(b"\n"):
            return None  # past the end asked for, or being appended right now
        if not is_record(line):
            return offset
        offset += len(line)
    return None


def garbage(path: Path, f: BinaryIO, offset: int) -> UserError:
    """The one line for a journal whose line at byte ``offset`` is not a record."""
    f.seek(0)
    number = f.read(offset).count(b"\n") + 1
    return UserError(
        f"the journal {path} is damaged at line {number} (byte {offset}): not an Optuna "
        "record; restore the file from a backup, or cut that line out into another file "
        "to keep the trials around it (the file was left unchanged)"
    )


def set_aside(path: Path, torn: bytes) -> Path:
    """``torn`` written, synced, to a new side file beside ``path``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    side = path.with_name(f"{path.name}.torn-{stamp}")
    with side.open("xb") as out:
        try:
            out.write(torn)
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            side.unlink()
            raise
    folder = os.open(side.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the side file's name is durable before the journal shrinks
    finally:
        os.close(folder)
    return side


def safe(name: str) -> str:
    """``name`` as part of a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """An OS file lock on ``path``, waited for: shared by every process, freed at death."""
    with FileLock(path):
        yield
