"""MLflow writes that could not be delivered, kept on disk until the tracking store is back.

Optuna's storage is the source of truth: a trial goes on when MLflow is
unreachable (the tracking server gone, its database full), and what its run
should have received waits here, one JSON file per write, in the order it
was made. The running study tries again now and then, the next run of the
study on start, and ``python -m hpo.check repair=true`` on demand; each
delivery takes a file lock, so two processes never deliver the same write.

A run that could not even be created gets a placeholder id (``spooled:...``);
its later writes wait behind its creation, and the real id replaces the
placeholder when it is delivered. Delivering a write again after a crash
mid-delivery does not repeat it: a closed run is left alone, and metric keys
the run already has are not logged twice.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from hpo.secrets import mask

log = logging.getLogger("hpo.tracking")
PLACEHOLDER = "spooled:"
_sequence = itertools.count()

Message = tuple[Any, ...]


def placeholder() -> str:
    """The id of a run whose creation is spooled."""
    return f"{PLACEHOLDER}{uuid.uuid4().hex}"


def is_placeholder(run_id: str) -> bool:
    return run_id.startswith(PLACEHOLDER)


class Spool:
    """One study's undelivered MLflow writes, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self._files())

    def put(self, message: Message) -> None:
        """Keep ``message`` durably (written whole, then renamed into place)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_sequence):06d}.json"
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "w") as out:
            json.dump(_plain(list(message)), out)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.folder / name)

    def deliver(
        self, apply: Callable[[Message], str | None], transient: Callable[[Exception], bool]
    ) -> int | None:
        """Apply the kept writes in order, each removed once applied; the number delivered.

        Stops at the first that fails for a ``transient`` reason (the store is
        still away): the rest keep their order. One that fails otherwise (its
        run was deleted) is logged and dropped, so that it cannot hold back the
        others. None when another process is delivering.
        """
        if not self._files():
            return 0
        lock = FileLock(str(self.folder / ".deliver.lock"), blocking=False)
        try:
            lock.acquire()
        except Timeout:
            return None
        try:
            delivered = 0
            for path in self._files():
                message = self._resolve(json.loads(path.read_text()))
                if message is None:  # its run's creation is still waiting
                    break
                try:
                    created = apply(message)
                except Exception as err:
                    if transient(err):
                        raise
                    log.warning("a waiting MLflow write %s was refused: %s", message[0], err)
                    created = None
                if message[0] == "create":
                    self._remember(message[1], created)
                path.unlink()
                delivered += 1
            return delivered
        finally:
            lock.release()

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("[0-9]*.json"))

    def _resolve(self, message: list[Any]) -> Message | None:
        """The message with a placeholder run id replaced by the created run's id."""
        run_id = message[1]
        if message[0] != "create" and str(run_id).startswith(PLACEHOLDER):
            known = self.folder / "runs" / run_id.removeprefix(PLACEHOLDER)
            if not known.is_file():
                return None
            message[1] = known.read_text().strip()
        return tuple(message)

    def _remember(self, held: str, created: str | None) -> None:
        if created:
            runs = self.folder / "runs"
            runs.mkdir(exist_ok=True)
            (runs / held.removeprefix(PLACEHOLDER)).write_text(created)


def spool_folder(base: Path, study: str) -> Path:
    """Where ``study``'s writes wait: ``base``/hpo-spool/<study>."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)
    return base / "hpo-spool" / safe


def _plain(value: Any) -> Any:
    """``value`` as JSON has it: arrays as lists, numpy numbers as Python numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Away:
    """Says once that tracking went away and once that it is back, across the processes
    of a study (the study and its writer process share the marker file in the spool)."""

    def __init__(self, uri: str, folder: Path) -> None:
        self.uri = uri
        self.folder = folder
        self.marker = folder / ".away"

    def gone(self, err: BaseException) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # said already, by this process or the other
        log.warning(
            "MLflow tracking at %s is unreachable (%s): trials go on; their runs' writes "
            "wait in %s and are sent when it is back",
            mask(self.uri),
            mask(" ".join(str(err).split()))[:160],
            self.folder,
        )

    def back(self, delivered: int) -> None:
        try:
            since = self.marker.stat().st_mtime
            self.marker.unlink()
        except FileNotFoundError:
            return
        log.warning(
            "MLflow tracking at %s is back after %.0f s: %d waiting writes delivered",
            mask(self.uri),
            time.time() - since,
            delivered,
        )


class _Muted(logging.Filter):
    """Drops a logger's records below ``floor`` while some ``quiet()`` block is open."""

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor

    def filter(self, record: logging.LogRecord) -> bool:
        return _quiet_blocks == 0 or record.levelno >= self.floor


_MUTED = {
    "mlflow.utils.rest_utils": logging.ERROR,
    "urllib3.connectionpool": logging.ERROR,
    "mlflow.store.db.utils": logging.CRITICAL,
}
_quiet_blocks = 0
_quiet_lock = threading.Lock()
for _name, _floor in _MUTED.items():
    logging.getLogger(_name).addFilter(_Muted(_floor))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow and urllib3 log each failed request and retry at WARNING, and MLflow's SQL
    store each failed write at ERROR with its traceback (a full or locked database):
    one line of ours says it instead.

    A filter on those loggers, not their levels: ``Logger.setLevel`` clears the cache
    of every logger in the process, 0.3 ms a call with MLflow loaded, several times
    per trial (benchmarks/overhead.py --profile)."""
    global _quiet_blocks
    with _quiet_lock:
        _quiet_blocks += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_blocks -= 1
