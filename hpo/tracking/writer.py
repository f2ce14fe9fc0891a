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

A write the tracking store cannot take (the server gone, its database full)
waits in the study's spool (hpo/tracking/spool.py) and is delivered when the
store is back; the trials go on meanwhile.

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
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo.metrics import score_all
from hpo.names import FAIL_REASON_TAG, STATE_TAG
from hpo.tracking.spool import Away, Spool, quiet

log = logging.getLogger(__name__)
BATCH = 1000  # MLflow's limit of metrics per log_batch call
PROMPT_SECONDS = 2.0  # an interrupted study waits this long for the writer, then takes over

# ("open", run_id)                       a run the caller created, to close if it dies
# ("create", run_id, experiment_id, run_name, tags{})  a run to create (spooled only)
# ("end", run_id, metrics[(key, value, step)], params{}, tags{}, status, oof)
# ("kill", run_id, tags{}, params{})    params: what the trial was trying (absent: none known)
# oof: (prefix, task, y_true, scores) to score with every metric of the task, or None
Message = tuple[Any, ...]
RETRY_SECONDS = 5.0  # while tracking is away, how often a process tries the spool again
# MLflow error codes that mean "this write is wrong" rather than "the store is away"
REFUSED = {
    "BAD_REQUEST",
    "INVALID_PARAMETER_VALUE",
    "INVALID_STATE",
    "PERMISSION_DENIED",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "UNAUTHENTICATED",
}


def unreachable(err: Exception) -> bool:
    """Whether ``err`` means the tracking store is away (server gone, database full or
    locked), so the write should wait, rather than that the write itself is wrong."""
    if isinstance(err, MlflowException):
        return err.error_code not in REFUSED
    return isinstance(err, OSError | ConnectionError | TimeoutError) or type(err).__module__.split(
        "."
    )[0] in ("requests", "urllib3", "sqlalchemy")


class Writes:
    """Applies messages with one MlflowClient; remembers which runs are still open.

    With a ``spool``, a write the store cannot take now waits there (and so does
    every later one, to keep their order) until a later attempt delivers them.
    """

    def __init__(
        self, uri: str, spool: Spool | None = None, client: MlflowClient | None = None
    ) -> None:
        self.client = client or MlflowClient(tracking_uri=uri)
        self.open: set[str] = set()
        self.spool = spool
        self.away = Away(uri, spool.folder) if spool is not None else None
        self.retry_at = 0.0

    def apply(self, message: Message) -> None:
        kind, run_id = message[0], message[1]
        if kind == "open":
            self.open.add(run_id)
            return
        self.open.discard(run_id)
        if self.spool is None:
            self.write(message)
        elif not self.caught_up():
            self.spool.put(message)
        else:
            try:
                self.write(message)
            except Exception as err:
                if not unreachable(err):
                    raise
                self.wait(message, err)

    def wait(self, message: Message, err: Exception) -> None:
        """Keep ``message`` in the spool: the store is away."""
        assert self.spool is not None and self.away is not None
        self.spool.put(message)
        self.away.gone(err)
        self.retry_at = time.monotonic() + RETRY_SECONDS

    def caught_up(self, now: bool = False) -> bool:
        """True when nothing waits in the spool (delivering it, at most every RETRY_SECONDS,
        or at once with ``now``)."""
        if self.spool is None or not len(self.spool):
            return True
        if not now and time.monotonic() < self.retry_at:
            return False
        assert self.away is not None
        self.retry_at = time.monotonic() + RETRY_SECONDS
        try:
            delivered = self.spool.deliver(lambda m: self.write(m, again=True), unreachable)
        except Exception as err:
            if not unreachable(err):
                raise
            self.away.gone(err)
            return False
        if delivered is None or len(self.spool):
            return False  # another process is delivering, or more arrived meanwhile
        self.away.back(delivered)
        return True

    def write(self, message: Message, again: bool = False) -> str | None:
        """Make the MLflow calls of one message; the new run's id for a "create".

        ``again``: a spooled write, maybe applied in part before a crash."""
        kind, run_id = message[0], message[1]
        if kind == "create":
            experiment_id, run_name, tags = message[2:5]
            run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
            return str(run.info.run_id)
        if kind == "end":
            metrics, params, tags, status, oof = message[2:]
            if oof is not None:
                prefix, task, y_true, scores = oof
                scored = score_all(task, np.asarray(y_true), np.asarray(scores))
                metrics = [*metrics, *((prefix + k, v, 0) for k, v in scored.items())]
            self._end(run_id, metrics, params, tags, status, again)
        elif kind == "kill":
            params = message[3] if len(message) > 3 else {}
            self._end(run_id, [], params, message[2], "KILLED", again)
        return None

    def _end(
        self,
        run_id: str,
        metrics: list[tuple[str, float, int]],
        params: dict[str, str],
        tags: dict[str, str],
        status: str,
        again: bool = False,
    ) -> None:
        if again:  # delivered before, in part? a closed run is left alone, no key logged twice
            run = self.client.get_run(run_id)
            if run.info.status != "RUNNING":
                return
            metrics = [m for m in metrics if m[0] not in run.data.metrics]
            params = {k: v for k, v in params.items() if k not in run.data.params}
        now = int(time.time() * 1000)
        entities = [Metric(k, v, now, step) for k, v, step in metrics]
        for start in range(0, max(len(entities), 1), BATCH):
            first = start == 0
            self.client.log_batch(
                run_id,
                metrics=entities[start : start + BATCH],
                params=[Param(k, v) for k, v in params.items()] if first else [],
                tags=[RunTag(k, v) for k, v in tags.items()] if first else [],
            )
        self.client.set_terminated(run_id, status=status)

    def kill_open(self, reason: str) -> None:
        for run_id in list(self.open):
            self.apply(("kill", run_id, {STATE_TAG: "KILLED", FAIL_REASON_TAG: reason}))


class InlineWriter:
    """Writes in the caller's process, as they come."""

    def __init__(self, uri: str, spool: Path | None = None) -> None:
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

    def __init__(self, uri: str, spool: Path | None = None, drain_timeout: float = 300.0) -> None:
        context = mp.get_context("spawn")  # fork after torch or xgboost threads is unsafe
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
        """
        if self.closed:
            return
        self.closed = True
        if self.fallback is None and self.process.is_alive():
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
