"""Applying child-run writes with one MlflowClient, and keeping what the store cannot take.

A write the tracking store cannot take (the server gone, its database full)
waits in the study's spool (hpo/tracking/spool.py) and is delivered when the
store is back; the trials go on meanwhile. ``unreachable`` tells such an
outage from a write that is wrong. The writers (writer.py) apply messages
through ``Writes``; so do the study process and ``hpo.check repair=true``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo.estimates.fast_scores import score_once
from hpo.names import FAIL_REASON_TAG, STATE_TAG
from hpo.tracking.spool import Away, Spool

BATCH = 1000  # MLflow's limit of metrics per log_batch call

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
                scored = score_once(task, np.asarray(y_true), np.asarray(scores))
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
