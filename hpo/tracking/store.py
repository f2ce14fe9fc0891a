"""Where MLflow is, and reaching it: a tracking server or a local store, each call bounded.

Apart from tracker.py, so that hpo.ui, hpo.check and hpo.replay find and check a
store without the tracker's writer and spool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3

from hpo.errors import UserError
from hpo.secrets import mask
from hpo.tracking.relocate import artifacts_beside

log = logging.getLogger("hpo.tracking")
RACES = ("UNIQUE constraint failed", "duplicate key value", "IntegrityError")


def lost_race(err: Exception) -> bool:
    """An insert refused because another process inserted the same key first."""
    return any(said in str(err) for said in RACES)


def write_ahead(uri: str) -> None:
    """Put a local SQLite store in write-ahead-log mode (kept in the file, once for all).

    SQLite's default rollback journal syncs the disk several times per commit and
    locks readers out while a process writes; a study process and its writer
    commit about seven times per trial. In WAL mode a commit is one append and
    one sync, readers (the UI, the study's own reads) never wait for the writer:
    an MLflow run costs 15 ms instead of 22 (benchmarks/overhead.py). Call it
    before MLflow opens the file; a store some process holds now keeps its mode.
    """
    if not uri.startswith("sqlite:"):
        return
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=1.0)) as db:
            db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as err:  # busy, read-only: MLflow's own default mode still works
        log.debug("MLflow store %s left in its journal mode: %s", database, err)


def bound_calls(timeout: float) -> None:
    """Bound each MLflow HTTP call near ``timeout`` seconds in all (three tries of a
    third each, 1 s and 2 s apart): MLflow's own defaults retry for minutes.

    Set in the environment, so the writer process (spawned later) has it too."""
    per_try = max(1, round(timeout / 3))
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(per_try)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "2"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0"


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Refuse an unreachable tracking server at once: MLflow's client would retry for minutes."""
    if not is_server(uri):
        return
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as err:
        cause = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))
        reason = "timed out" if isinstance(err, requests.Timeout) else "no answer"
        reason = cause.group(1).strip() if cause else reason
        raise UserError(
            f"cannot reach the MLflow tracking server at {mask(uri)} ({reason}): start it "
            "(mlflow server ...) or set HPO_TRACKING_URI / tracking.uri"
        ) from None


def default_artifacts(uri: str) -> str | None:
    """Where a store's artifacts go when tracking.artifact_location is unset.

    Beside a local SQLite store: ./mlartifacts next to mlflow.db (where
    hpo/tracking/relocate.py finds it again once the folder has moved). None for
    a server, which decides for itself.
    """
    beside = artifacts_beside(uri)
    return None if beside is None else str(beside)
