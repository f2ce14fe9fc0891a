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
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from hpo.errors import UserError
from hpo.secrets import mask


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
    try:
        lock.acquire()
    except Timeout:
        raise refusal(study, _read(info)) from None
    try:
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        info.write_text(json.dumps({"holder": holder(), "night": night, "since": since}))
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()


def _read(info: Path) -> str:
    try:
        held = json.loads(info.read_text())
        return f"night {held['night']}, {held['holder']}, since {held['since']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
