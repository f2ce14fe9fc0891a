"""One nightly run of a study at a time: a lock held for the whole night, never waited for.

A second trigger (cron firing again, a manual run, another machine) must not
queue behind the first: it exits at once, saying who holds the lock.

- PostgreSQL storage: a session-level advisory lock on a connection held
  open for the night. It works across machines, and the server releases it
  when the process dies or its connection drops.
- Local files (Optuna journal, SQLite): an OS file lock beside the storage
  file, released by the kernel when the process dies; a JSON file beside it
  says who holds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from hpo.errors import UserError
from hpo.storage import mask, pg_connect_args, psycopg_url


class AlreadyRunning(UserError):
    """Another process holds the study's nightly lock."""


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def night_lock(storage_url: str, study: str, night: str) -> Iterator[None]:
    """Hold the nightly lock of ``study`` (the undated name) or raise AlreadyRunning."""
    url = storage_url.strip()
    if url.startswith("postgresql"):
        with _pg_lock(url, study, night):
            yield
        return
    path = lock_path(url, study)
    if path is None:
        raise UserError(
            f"schedule=nightly cannot lock storage {mask(url)}: use a journal:PATH, "
            "sqlite:///PATH or postgresql:// storage.url"
        )
    with _file_lock(path, study, night):
        yield


def lock_path(url: str, study: str) -> Path | None:
    """The lock file beside a local storage file, or None for other storages."""
    if url.startswith("journal:"):
        file = url.removeprefix("journal:").removeprefix("//")
    elif url.startswith("sqlite:///") and ":memory:" not in url:
        file = url.removeprefix("sqlite:///")
    else:
        return None
    return Path(f"{file}.nightly-{re.sub(r'[^A-Za-z0-9_.-]', '_', study)}.lock")


@contextlib.contextmanager
def _file_lock(path: Path, study: str, night: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = path.with_suffix(".json")
    lock = FileLock(str(path), blocking=False, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        raise _refusal(study, _read(info)) from None
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


@contextlib.contextmanager
def _pg_lock(url: str, study: str, night: str) -> Iterator[None]:
    url = psycopg_url(url)
    name = f"hpo-nightly {night} {holder()}"[:63]  # shown to others in pg_stat_activity
    engine = create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",  # no transaction left open all night
        # keepalives (no lock or idle timeouts: the session idles all night holding the lock)
        connect_args={**pg_connect_args(url, timeouts=False), "application_name": name},
    )
    key = lock_key(study)
    try:
        connection = engine.connect()
    except Exception as err:
        engine.dispose()
        raise UserError(
            f"cannot open storage {mask(url)} for the nightly lock "
            f"({mask(str(err).splitlines()[0])}): check storage.url and that the database is up"
        ) from None
    try:
        # exempt from a server-wide idle_session_timeout (14+), which would free the lock mid-night
        if (connection.dialect.server_version_info or (0,)) >= (14,):
            connection.execute(text("SET idle_session_timeout = 0"))
        locked = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not locked:
            raise _refusal(study, _pg_holder(connection, key))
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        connection.close()
        engine.dispose()


def lock_key(study: str) -> int:
    """A signed 64-bit advisory-lock key, apart from hpo.storage's per-study keys."""
    digest = hashlib.sha256(f"hpo-nightly:{study}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _pg_holder(connection: Connection, key: int) -> str:
    """Who holds the advisory lock ``key``: PostgreSQL splits a bigint key in two oids."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = connection.execute(
        text(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
            "AND l.objsubid = 1"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
    ).first()
    if row is None:
        return "holder unknown"
    name, addr, start = row
    where = f" from {addr}" if addr else ""
    return f"{name or 'a session'}{where}, connected since {start:%Y-%m-%dT%H:%M:%S%z}"


def _refusal(study: str, who: str) -> AlreadyRunning:
    return AlreadyRunning(
        f"nightly study '{study}' is already running ({who}): let it finish, "
        "or stop that process before starting another"
    )
