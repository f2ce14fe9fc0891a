"""Child-run writes off the trial's critical path.

One MLflow child run costs about 30 ms of Python work inside MLflow's store,
as much as the rest of a cheap trial. A thread would not help (the GIL), so
``ProcessWriter`` hands the writes to a process of its own, with its own
MlflowClient, through a queue. The trial loop only pays for pickling a
small message. ``InlineWriter`` does the same writes in the caller's process
(``tracking.writer=inline``): slower, but nothing to drain.

Messages name a trial by a token (its number); the writer keeps the MLflow
run id of each token until the trial's run is closed. When the study
process ends, ``close()`` drains the queue; if it dies, the writer notices
that its parent is gone, writes what it already received, and closes every
run still open as KILLED, so no run stays RUNNING.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import time
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)
BATCH = 1000  # MLflow's limit of metrics per log_batch call

# ("create", token, experiment_id, run_name, tags)
# ("end", token, metrics[(key, value, step)], params{}, tags{}, status)
# ("kill", token, tags{})
Message = tuple[Any, ...]


class Writes:
    """Applies messages with one MlflowClient; remembers the run id of each open token."""

    def __init__(self, uri: str) -> None:
        self.client = MlflowClient(tracking_uri=uri)
        self.open: dict[int, str] = {}

    def apply(self, message: Message) -> tuple[int, str] | None:
        kind, token = message[0], message[1]
        if kind == "create":
            experiment_id, run_name, tags = message[2:]
            run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
            self.open[token] = run.info.run_id
            return token, run.info.run_id
        run_id = self.open.pop(token, None)
        if run_id is None:
            return None
        if kind == "end":
            metrics, params, tags, status = message[2:]
            self._end(run_id, metrics, params, tags, status)
        elif kind == "kill":
            self._end(run_id, [], {}, message[2], "KILLED")
        return None

    def _end(
        self,
        run_id: str,
        metrics: list[tuple[str, float, int]],
        params: dict[str, str],
        tags: dict[str, str],
        status: str,
    ) -> None:
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
        for token in list(self.open):
            self.apply(("kill", token, {"hpo.state": "KILLED", "hpo.fail_reason": reason}))


class InlineWriter:
    """Writes in the caller's process, as they come."""

    def __init__(self, uri: str) -> None:
        self.writes = Writes(uri)

    def send(self, message: Message) -> None:
        self.writes.apply(message)

    def run_id(self, token: int, wait: bool = True) -> str | None:
        return self.writes.open.get(token)

    def close(self) -> None:
        self.writes.kill_open("the study process ended with the run open")


class ProcessWriter:
    """Writes in a child process; ``run_id`` waits for the id of a run it asked to create."""

    def __init__(self, uri: str, drain_timeout: float = 300.0) -> None:
        context = mp.get_context("spawn")  # fork after torch or xgboost threads is unsafe
        self.inbox: Any = context.Queue()
        self.outbox: Any = context.Queue()
        self.ids: dict[int, str | None] = {}
        self.drain_timeout = drain_timeout
        self.process = context.Process(
            target=_serve,
            args=(uri, self.inbox, self.outbox, os.getpid()),
            name="hpo-mlflow-writer",
            daemon=False,
        )
        self.process.start()

    def send(self, message: Message) -> None:
        self.inbox.put(message)

    def run_id(self, token: int, wait: bool = True) -> str | None:
        """The run id of ``token``: None while unknown (``wait=False``) or if creation failed."""
        deadline = time.monotonic() + 60.0
        while token not in self.ids:
            try:
                if wait:
                    got, run_id = self.outbox.get(timeout=max(deadline - time.monotonic(), 0.01))
                else:
                    got, run_id = self.outbox.get_nowait()
            except queue.Empty:
                if wait and time.monotonic() < deadline:
                    continue
                if wait:
                    log.warning("the MLflow writer did not answer for trial %d", token)
                return None
            self.ids[got] = run_id
        return self.ids[token]

    def close(self) -> None:
        """Drain every queued write, then stop the writer."""
        if not self.process.is_alive():
            return
        self.inbox.put(None)
        self.process.join(self.drain_timeout)
        if self.process.is_alive():
            log.warning(
                "the MLflow writer did not drain in %.0f s: stopped; runs it had not "
                "closed stay RUNNING until `hpo check`",
                self.drain_timeout,
            )
            self.process.terminate()
        self.inbox.close()
        self.outbox.close()


def _serve(uri: str, inbox: Any, outbox: Any, parent_pid: int) -> None:
    """The writer process: apply messages until told to stop or the parent is gone."""
    writes = Writes(uri)
    while True:
        try:
            message = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the study process died: close what it left open
                writes.kill_open("the study process died")
                return
            continue
        if message is None:
            writes.kill_open("the study process ended with the run open")
            return
        answer: tuple[int, str | None] | None
        try:
            answer = writes.apply(message)
        except Exception as err:  # one bad write must not stop the others
            log.warning("MLflow write %s failed: %s", message[0], err)
            answer = (message[1], None) if message[0] == "create" else None
        if answer is not None:
            outbox.put(answer)


def make_writer(uri: str, kind: str) -> InlineWriter | ProcessWriter:
    return ProcessWriter(uri) if kind == "process" else InlineWriter(uri)
