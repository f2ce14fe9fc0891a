"""Child-run writes off the trial's critical path.

Closing one MLflow child run (log_batch + set_terminated) costs about 30 ms
of Python work inside MLflow's store, and the out-of-fold metrics another
20 ms of scikit-learn input checks: as much as the rest of a cheap trial.
A thread would not help (the GIL), so ``ProcessWriter`` hands that work to
a process of its own, with its own MlflowClient, through a queue; the trial
loop only pays for pickling a message. The run itself is created by the
caller (10 ms), so its id is known at once and kept on the Optuna trial.
``InlineWriter`` does the same work in the caller's process
(``tracking.writer=inline``): slower, but nothing to drain.

Both apply messages through ``Writes`` (writes.py), which keeps in the
study's spool what the tracking store cannot take now.

When the study process ends, ``close()`` drains the queue; if it dies, the
writer notices that its parent is gone, writes what it already received,
and closes every run still open as KILLED, so no run stays RUNNING. If the
writer dies, or an interrupted study cannot wait for it, the study process
writes whatever the writer had not applied.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.tracking.spool import Message, Spool, quiet, spool_folder

if TYPE_CHECKING:
    from hpo.config import TrackingConfig

log = logging.getLogger(__name__)
PROMPT_SECONDS = 2.0  # an interrupted study waits this long for the writer, then takes over


class InlineWriter:
    """Writes in the caller's process, as they come."""

    def __init__(self, uri: str, spool: Path | None = None) -> None:
        from hpo.tracking.writes import Writes

        self.writes = Writes(uri, Spool(spool) if spool is not None else None)

    def send(self, message: Message) -> None:
        self.writes.apply(message)

    def close(self, prompt: bool = False) -> None:
        self.writes.kill_open("the study process ended with the run open")


class ProcessWriter:
    """Writes in a child process, in the order they were sent.

    The parent keeps each message until the writer has applied it (a shared
    counter), so nothing is lost if the writer dies or must be stopped: the
    parent then applies the rest itself. An interrupted study (SIGTERM,
    Ctrl-C) does not wait for a writer that is still starting or behind.
    """

    def __init__(
        self,
        uri: str,
        spool: Path | None = None,
        drain_timeout: float = 300.0,
        start: str = "spawn",
    ) -> None:
        # spawn: fork after torch or xgboost threads is unsafe. "fork" only from a process
        # with no thread yet (a forked worker of workers=N): it saves MLflow's import.
        context: Any = mp.get_context(start)
        self.uri = uri
        self.spool = spool
        self.inbox: Any = context.Queue()
        self.applied: Any = context.Value("l", 0)  # messages the writer has finished
        self.pending: deque[tuple[int, Message]] = deque()  # sent, maybe not yet applied
        self.sent = 0
        self.drain_timeout = drain_timeout
        self.fallback: InlineWriter | None = None
        self.closed = False
        self.process = context.Process(
            target=_serve,
            args=(uri, spool, self.inbox, os.getpid(), self.applied),
            name="hpo-mlflow-writer",
            daemon=False,
        )
        # Ctrl-C in a terminal reaches the whole process group: the study process ends the
        # writer itself (close(prompt=True)), so the writer ignores SIGINT from its first
        # instruction (set here, inherited through spawn) and prints no traceback.
        with _sigint_ignored():
            self.process.start()

    def send(self, message: Message) -> None:
        if self.fallback is None and not self.process.is_alive():
            log.warning("the MLflow writer process died: writing in the study process from now")
            self._take_over()
        if self.fallback is not None:
            self.fallback.send(message)
            return
        self._forget_applied()
        self.pending.append((self.sent, message))
        self.sent += 1
        self.inbox.put(message)

    def close(self, prompt: bool = False) -> None:
        """Drain every queued write, then stop the writer.

        ``prompt``: the study was interrupted; give the writer a few seconds,
        then stop it and write what it had not applied from this process.
        A writer that was never sent anything is stopped at once (the study
        ended before its first trial, e.g. on a user error).
        """
        if self.closed:
            return
        self.closed = True
        if not self.sent:
            self.process.kill()
            self.process.join()
        elif self.fallback is None and self.process.is_alive():
            self.inbox.put(None)
            self.process.join(PROMPT_SECONDS if prompt else self.drain_timeout)
            if self.process.is_alive():
                if not prompt:
                    log.warning(
                        "the MLflow writer did not drain in %.0f s: writing the rest here",
                        self.drain_timeout,
                    )
                self.process.kill()  # SIGKILL: also ends a writer that is stopped or stuck
                self.process.join()
        self._forget_applied()
        if self.fallback is None and self.pending:
            self._take_over()
        if self.fallback is not None:
            self.fallback.close()
        self.inbox.close()

    def _forget_applied(self) -> None:
        done = self.applied.value
        while self.pending and self.pending[0][0] < done:
            self.pending.popleft()

    def _take_over(self) -> None:
        """Apply, in this process, every message the (stopped) writer had not applied."""
        self._forget_applied()
        self.fallback = InlineWriter(self.uri, self.spool)
        for _, message in self.pending:
            try:
                self.fallback.send(message)
            except Exception as err:  # as in the writer: one bad write must not stop the others
                log.warning("MLflow write %s for run %s failed: %s", message[0], message[1], err)
        self.pending.clear()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (only the main thread may change a signal's handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _serve(uri: str, spool: Path | None, inbox: Any, parent_pid: int, applied: Any) -> None:
    """The writer process: apply messages until told to stop or the parent is gone."""
    from hpo.storages import init_lock
    from hpo.tracking.store import write_ahead
    from hpo.tracking.writes import Writes

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as spawned; forked, it has the study's
    # Started before the plan: a study that stops on a user error must print its one line
    # alone, not MLflow's notes on creating its tables.
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with init_lock(uri, "mlflow-schema"):  # the study process may be creating the tables
        write_ahead(uri)
        writes = Writes(uri, Spool(spool) if spool is not None else None)
    while True:
        try:
            message = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the study process died: close what it left open
                writes.kill_open("the study process died")
                return
            with quiet():
                writes.caught_up()  # tracking back? deliver what waits, between trials
            continue
        if message is None:
            writes.kill_open("the study process ended with the run open")
            with quiet():
                writes.caught_up(now=True)
            return
        try:
            with quiet():
                writes.apply(message)
        except Exception as err:  # one bad write must not stop the others
            log.warning("MLflow write %s for run %s failed: %s", message[0], message[1], err)
        with applied.get_lock():
            applied.value += 1


def make_writer(uri: str, kind: str, spool: Path | None = None) -> InlineWriter | ProcessWriter:
    return ProcessWriter(uri, spool) if kind == "process" else InlineWriter(uri, spool)


def early_writer(cfg: TrackingConfig, study: str, start: str = "spawn") -> ProcessWriter | None:
    """The study's writer process, started before anything else of the study.

    A spawned writer imports MLflow and opens its store: 2 to 5 s on this
    machine before it applies its first write, while trials queue behind it.
    Started first, that overlaps the plan (data, splits), the storage and the
    study process's own MLflow start (benchmarks/overhead.py). The Tracker
    takes it; None without tracking or with ``tracking.writer=inline``. ``start``:
    the multiprocessing start method (see ``ProcessWriter``).
    """
    if not cfg.enabled or cfg.writer != "process":
        return None
    return ProcessWriter(cfg.uri, spool_folder(Path(cfg.spool).resolve(), study), start=start)
