"""The proxy's gRPC server: Optuna's storage servicer and hpo's own service, on one port.

Optuna's ``run_grpc_proxy_server`` builds a server with Optuna's servicer
alone and blocks in it; this builds the same server (the same servicer, on
Optuna's cache over the RDBStorage, as its docs advise) and adds before
starting it:

- ``hpo.Proxy/StudyLock``: the study lock, held for as long as the worker
  keeps its stream open. First a lock in this process per study, so that at
  most one database connection per study waits for or holds the lock
  however many workers ask; then the backend's own study lock
  (PostgreSQL's advisory transaction lock, the one direct workers take). A
  lock request waits in a server thread: at most half the threads may do so,
  and a request past that is refused with RESOURCE_EXHAUSTED (the worker
  retries), so waiters never starve the storage calls of the holder.
- ``hpo.Proxy/Beat`` and ``hpo.Proxy/Stale``: heartbeats in the database's
  trial_heartbeats table, judged with the asking worker's grace period.
- an interceptor that answers UNAVAILABLE where the database behind is down
  (what a worker waits out) instead of gRPC's UNKNOWN (which ends it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._grpc.auto_generated import api_pb2_grpc
from optuna.storages._grpc.servicer import OptunaStorageProxyService
from optuna.storages._rdb import models
from optuna.trial import TrialState

from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages import is_outage, study_lock
from hpo.storages.base import log
from hpo.storages.grpc import HELD, KEEPALIVE, PROTOCOL, SERVICE, decode, encode, identity
from hpo.storages.outage import trouble
from hpo.storages.postgres import LOCK_TIMEOUT

THREADS = 64  # server threads: storage calls, and lock requests waiting (at most half of them)
WAKE = 1.0  # seconds between looks, while a lock request waits, at whether its worker is there
# Workers ping every 30 s (KEEPALIVE): allow it, and ping them back to find dead ones.
SERVER_OPTIONS = [
    *KEEPALIVE,
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
]


def make_server(rdb: RDBStorage, host: str, port: int, threads: int = THREADS) -> tuple[Any, int]:
    """The proxy's server for ``rdb``, started, and the port it listens on (``port`` 0: any)."""
    storage = optuna.storages.get_storage(rdb)  # Optuna's cache: finished trials read once
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hpo-proxy")
    server = grpc.server(pool, interceptors=[Outages()], options=SERVER_OPTIONS)
    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    server.add_generic_rpc_handlers([HpoService(rdb, storage, max(1, threads // 2)).handler()])
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as err:  # grpcio >= 1.60 raises where older ones returned 0
        raise UserError(
            f"cannot listen on {host}:{port} ({err}): is the port taken? choose port=..."
        ) from None
    if not bound:
        raise UserError(f"cannot listen on {host}:{port}: is the port taken? choose port=...")
    server.start()
    return server, bound


class HpoService:
    """hpo's methods beside Optuna's: the study lock and heartbeats (see the module's doc)."""

    def __init__(self, rdb: RDBStorage, storage: BaseStorage, slots: int) -> None:
        self._rdb = rdb  # the backend's study lock and the heartbeat query need the RDBStorage
        self._storage = storage  # Optuna's cache over it, which the servicer uses
        self._slots = threading.BoundedSemaphore(slots)
        self._slot_count = slots
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(method: Callable[[bytes, Any], bytes]) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(method, identity, identity)

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Hello": unary(self.hello),
                "Beat": unary(self.beat),
                "Stale": unary(self.stale),
                "StudyLock": grpc.stream_stream_rpc_method_handler(
                    self.study_lock, identity, identity
                ),
            },
        )

    def hello(self, request: bytes, context: Any) -> bytes:
        return encode({"protocol": PROTOCOL})

    def beat(self, request: bytes, context: Any) -> bytes:
        self._storage.record_heartbeat(int(decode(request)["trial_id"]))  # type: ignore[attr-defined]
        return encode({})

    def stale(self, request: bytes, context: Any) -> bytes:
        asked = decode(request)
        ids = stale_trial_ids(self._rdb, int(asked["study_id"]), float(asked["grace"]))
        return encode({"trial_ids": ids})

    def study_lock(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        """Take the study lock, say so, hold it until the worker's stream ends."""
        first = next(requests, None)
        if first is None:
            return
        study = str(decode(first)["study"])
        if not self._slots.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self._slot_count} workers hold or wait for a study lock here already: "
                f"give the proxy more threads (threads={4 * self._slot_count})",
            )
        try:
            local = self._local(study)
            if not _wait(local, context):
                return  # the worker went away while it waited
            try:
                with study_lock(self._rdb, study):
                    yield HELD
                    with contextlib.suppress(grpc.RpcError):  # raised when the worker is gone
                        for _ in requests:
                            pass
            finally:
                local.release()
        except Exception as err:
            if is_outage(err):
                context.abort(grpc.StatusCode.UNAVAILABLE, f"the database: {trouble(err)}")
            raise
        finally:
            self._slots.release()

    def _local(self, study: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(study, threading.Lock())


def _wait(lock: threading.Lock, context: Any) -> bool:
    """Take ``lock``; False once the worker asking has gone. Past LOCK_TIMEOUT, UNAVAILABLE:
    the worker retries, as it does after PostgreSQL's lock_timeout."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while not lock.acquire(timeout=WAKE):
        if not context.is_active():
            return False
        if time.monotonic() > deadline:
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the study lock stayed taken for over {LOCK_TIMEOUT:g} s",
            )
    return True


def stale_trial_ids(rdb: RDBStorage, study_id: int, grace: float) -> list[int]:
    """The study's RUNNING trials whose last heartbeat is older than ``grace`` seconds, on the
    database's clock: Optuna's ``RDBStorage._get_stale_trial_ids``, with the asking worker's
    grace period instead of the storage's own."""
    beat = models.TrialHeartbeatModel
    trial = models.TrialModel
    session = rdb.scoped_session()
    try:
        now = session.execute(sqlalchemy.func.now()).scalar_one().replace(tzinfo=None)
        rows = (
            session.query(beat.trial_id, beat.heartbeat)
            .join(trial, trial.trial_id == beat.trial_id)
            .filter(trial.study_id == study_id, trial.state == TrialState.RUNNING)
            .all()
        )
    finally:
        session.close()
    limit = dt.timedelta(seconds=grace)
    return [trial_id for trial_id, last in rows if now - last > limit]


class Outages(grpc.ServerInterceptor):
    """A database outage behind the proxy reaches the worker as UNAVAILABLE, which it waits
    out, not as the UNKNOWN that any other exception becomes (which it does not)."""

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary

        def guarded(request: Any, context: Any) -> Any:
            try:
                return behavior(request, context)
            except Exception as err:
                if is_outage(err):
                    said = trouble(err)
                    log.warning("%s: %s", details.method, said)
                    context.abort(grpc.StatusCode.UNAVAILABLE, f"the database: {mask(said)}")
                raise

        return handler._replace(unary_unary=guarded)
