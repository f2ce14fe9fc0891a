"""Optuna's gRPC storage proxy (``grpc://HOST:PORT``): many workers, one process on the database.

Workers talk to ``python -m hpo.storages.proxy`` (hpo/storages/proxy.py), which
serves Optuna's storage API (``run_grpc_proxy_server``'s servicer) in front of
PostgreSQL: the database sees the proxy's few pooled connections, not every
worker's, and the workers hold no database password.

What a worker needs beyond Optuna's API comes from the same server, as a
small service of hpo's own (``hpo.Proxy``, JSON over gRPC):

- the study lock: a stream held open for as long as the lock is held. The
  proxy takes the very lock a direct worker takes (PostgreSQL's advisory lock
  keyed by the study name), so workers through the proxy, workers on the
  database and several proxies all exclude each other. A worker that dies or
  vanishes ends its stream (TCP reset, or keepalives within about 40 s), and
  the proxy lets the lock go, as PostgreSQL does when a session ends.
- heartbeats: recorded in the database behind the proxy and judged with the
  asking worker's grace period, so a dead worker's trial on any machine is
  failed and retried as on PostgreSQL.

The exact budget then holds as it does directly: ``claim`` counts the study's
trials and asks for one under the lock, and every one of those calls is a
round trip that the proxy commits before it answers. A proxy that is
unreachable, busy, or whose database is down answers UNAVAILABLE (or
RESOURCE_EXHAUSTED): an outage, waited out like a database's.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage, GrpcStorageProxy
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial

from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages.base import Backend
from hpo.storages.heartbeat import StaleTrials

PORT = 13000  # Optuna's default port for the proxy
CONNECT_TIMEOUT = 10.0  # seconds the first call may take before the proxy counts as unreachable
SERVICE = "hpo.Proxy"  # hpo's own methods beside Optuna's optuna.StorageService
HELLO, LOCK, BEAT, STALE = (f"/{SERVICE}/{m}" for m in ("Hello", "StudyLock", "Beat", "Stale"))
PROTOCOL = 1  # bumped when these methods change; the proxy says its own in Hello
HELD = b'{"held": true}'
# Dead peers are found by HTTP/2 pings, as dead PostgreSQL clients are by TCP keepalives.
KEEPALIVE = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
OUTAGE_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
START_PROXY = "python -m hpo.storages.proxy storage=postgres"


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any]:
    value = json.loads(data or b"{}")
    return value if isinstance(value, dict) else {}


def identity(data: bytes) -> bytes:
    return data


class GrpcProxy(Backend):
    name = "gRPC proxy"
    schemes = ("grpc://",)
    heartbeats = True
    url_from_parts = True  # conf/storage/grpc.yaml: url is grpc://${.host}:${.port}
    optuna_tools = False  # Optuna's CLI and optuna-dashboard open the database behind it
    survives_fork = False  # grpcio's threads and channels are not fork-safe

    @classmethod
    def owns(cls, storage: BaseStorage) -> bool:
        return isinstance(storage, ProxyStorage)

    def address(self) -> tuple[str, int]:
        try:
            parts = urlsplit(self.url)
            host, port = parts.hostname, parts.port
        except ValueError:
            host, port = None, None
        if not host:
            raise UserError(
                f"storage.url '{mask(self.url)}' names no proxy: use grpc://HOST:PORT "
                "(or storage=grpc storage.host=HOST storage.port=PORT)"
            )
        return host, port or PORT

    def open(self) -> ProxyStorage:
        """A client of the proxy, checked with one call so that a wrong address fails now."""
        try:
            import grpc
        except ImportError:
            raise UserError(
                "storage.url is a gRPC proxy URL but grpcio is missing: pip install grpcio"
            ) from None
        host, port = self.address()
        cfg = self.cfg
        with warnings.catch_warnings():  # "experimental" since Optuna 4.2; said once per worker
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = ProxyStorage(
                host, port, cfg.heartbeat_interval, cfg.grace_period, StaleTrials(cfg.max_retry)
            )
        try:
            hello = storage.hello(CONNECT_TIMEOUT)
        except grpc.RpcError as err:
            storage.close()
            raise UserError(self._unreachable(err, grpc.StatusCode)) from None
        if hello.get("protocol") != PROTOCOL:
            storage.close()
            raise UserError(
                f"the proxy at {self.shown()} speaks protocol {hello.get('protocol')}, "
                f"this worker {PROTOCOL}: run the same hpo version on both"
            )
        return storage

    def _unreachable(self, err: Any, codes: Any) -> str:
        code = err.code() if callable(getattr(err, "code", None)) else None
        if code == codes.UNIMPLEMENTED:
            return (
                f"{self.shown()} is a plain Optuna proxy, without hpo's study lock and "
                f"heartbeats: serve the database with {START_PROXY} instead"
            )
        said = err.details() if callable(getattr(err, "details", None)) else str(err)
        return (
            f"cannot open storage {self.shown()} ({mask(str(said or code))}): check "
            f"storage.host and storage.port and that the proxy ({START_PROXY}) is running"
        )

    @classmethod
    def study_lock(cls, storage: BaseStorage, study_name: str) -> AbstractContextManager[None]:
        assert isinstance(storage, ProxyStorage)
        return storage.study_lock(study_name)

    @classmethod
    def lost_connection(cls, err: BaseException) -> bool:
        return _code(err) in OUTAGE_CODES

    @classmethod
    def trouble(cls, err: BaseException) -> str | None:
        if _code(err) not in OUTAGE_CODES:
            return None
        details = getattr(err, "details", None)
        said = details() if callable(details) else None
        return f"the gRPC proxy: {mask(str(said))}" if said else "the gRPC proxy is unreachable"


def _code(err: BaseException) -> str | None:
    """The gRPC status code's name of ``err``, or None for anything but a gRPC call's error."""
    grpc = sys.modules.get("grpc")  # not imported: no gRPC error can have happened
    if grpc is None or not isinstance(err, grpc.RpcError):
        return None
    code = getattr(err, "code", None)
    status = code() if callable(code) else None
    return getattr(status, "name", None)


class ProxyStorage(GrpcStorageProxy, BaseHeartbeat):
    """Optuna's ``GrpcStorageProxy`` plus hpo's study lock and heartbeats, from the same proxy.

    Its channel pings the proxy (KEEPALIVE), so a proxy that vanished fails the
    calls waiting on it instead of leaving them hanging.
    """

    def __init__(
        self,
        host: str,
        port: int,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback
        super().__init__(host=host, port=port)

    def _setup(self) -> None:
        import grpc
        from optuna.storages._grpc.auto_generated import api_pb2_grpc
        from optuna.storages._grpc.client import GrpcClientCache

        options = [("grpc.max_receive_message_length", -1), *KEEPALIVE]
        host = f"[{self._host}]" if ":" in self._host else self._host  # an IPv6 address
        self._channel = grpc.insecure_channel(f"{host}:{self._port}", options=options)
        self._stub = api_pb2_grpc.StorageServiceStub(self._channel)
        self._cache = GrpcClientCache(self._stub)
        self._calls = {
            path: self._channel.unary_unary(
                path, request_serializer=identity, response_deserializer=identity
            )
            for path in (HELLO, BEAT, STALE)
        }
        self._hold = self._channel.stream_stream(
            LOCK, request_serializer=identity, response_deserializer=identity
        )

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_calls", None)
        state.pop("_hold", None)
        return state

    def _call(self, path: str, timeout: float | None = None, **request: Any) -> dict[str, Any]:
        return decode(self._calls[path](encode(request), timeout=timeout))

    def hello(self, timeout: float | None = None) -> dict[str, Any]:
        """The proxy's answer to a first call: its protocol version."""
        return self._call(HELLO, timeout)

    @contextlib.contextmanager
    def study_lock(self, study_name: str) -> Iterator[None]:
        """Hold the study lock in the proxy for as long as the block runs.

        The lock is one streaming call: the proxy answers once it holds the lock
        and lets it go when this side ends the stream (here, or by dying).
        """
        done = threading.Event()

        def requests() -> Iterator[bytes]:
            yield encode({"study": study_name})
            done.wait()  # then end the stream: the lock is let go

        responses = self._hold(requests())
        try:
            next(responses)  # held (a refusal or an outage raises here)
            yield
        except BaseException:
            done.set()
            responses.cancel()  # the proxy lets go at once
            raise
        done.set()
        for _ in responses:  # the proxy has let go when the stream ends
            pass

    def record_heartbeat(self, trial_id: int) -> None:
        self._call(BEAT, trial_id=trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        assert self.heartbeat_interval is not None
        grace = self.grace_period or 2 * self.heartbeat_interval
        return [int(i) for i in self._call(STALE, study_id=study_id, grace=grace)["trial_ids"]]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback
