"""What every backend's night lock shares: who holds it, the refusal, and the file lock.

A nightly run holds its lock for hours and a second trigger (cron firing
again, a manual run, another machine) must not queue behind it: it exits at
once, saying who holds the lock. Local files (Optuna journal, SQLite) use an
OS file lock beside the storage file, released by the kernel when the
process dies, with a JSON file beside it saying who holds it; servers use
their own (PostgreSQL: hpo/storages/postgres.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from hpo.errors import UserError
from hpo.secrets import mask

INFO_WAIT = 10.0  # seconds a refusal waits for the holder to say who it is


class AlreadyRunning(UserError):
    """Another process holds the study's nightly lock."""


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def unsupported(url: str) -> UserError:
    """The refusal for a storage that has no night lock."""
    return UserError(
        f"schedule=nightly cannot lock storage {mask(url)}: use a journal:PATH, "
        "sqlite:///PATH or postgresql:// storage.url"
    )


def refusal(study: str, who: str) -> AlreadyRunning:
    return AlreadyRunning(
        f"nightly study '{study}' is already running ({who}): let it finish, "
        "or stop that process before starting another"
    )


def lock_file(file: str, study: str) -> Path:
    """The night lock file beside the local storage ``file``."""
    return Path(f"{file}.nightly-{re.sub(r'[^A-Za-z0-9_.-]', '_', study)}.lock")


@contextlib.contextmanager
def file_night_lock(path: Path, study: str, night: str) -> Iterator[None]:
    """Hold the OS lock on ``path`` for the night, or raise AlreadyRunning at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = path.with_suffix(".json")
    lock = FileLock(str(path), blocking=False, preserve_lock_file=True)
    _acquire(lock, info, study)
    try:
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        written = info.with_suffix(f".{os.getpid()}.tmp")
        written.write_text(json.dumps({"holder": holder(), "night": night, "since": since}))
        written.replace(info)  # whole or absent: a refusal never reads half of it
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()


def _acquire(lock: FileLock, info: Path, study: str) -> None:
    """Take the lock, or refuse naming its holder.

    The holder writes who it is just after taking the lock, so a run started
    at the same moment can find the lock held and the note not yet there: it
    looks again (taking the lock itself if the holder has gone meanwhile)
    for up to INFO_WAIT seconds before refusing with "holder unknown".
    """
    deadline = time.monotonic() + INFO_WAIT
    while True:
        try:
            lock.acquire()
            return
        except Timeout:
            who = _read(info)
            if who is not None or time.monotonic() > deadline:
                raise refusal(study, who or "holder unknown") from None
            time.sleep(0.05)


def _read(info: Path) -> str | None:
    try:
        held = json.loads(info.read_text())
        return f"night {held['night']}, {held['holder']}, since {held['since']}"
    except (OSError, ValueError, KeyError):
        return None
