"""Outages are waited out, bad queries are not: the classification and the retry loop.

The last test cuts real workers off a real PostgreSQL through a TCP relay
(the shared test server keeps running); restarting a server and killing its
sessions are rows of the fault matrix (benchmarks/faults, tests/benchmarks).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import redis
from optuna.trial import TrialState
from sqlalchemy import exc
from sqlalchemy.engine import make_url

from hpo.storages import DatabaseOutage, is_outage, retrying
from hpo.storages.outage import trouble
from tests.hpo.pg import new_database
from tests.hpo.storages.helpers import Store, mlflow_runs, start_workers


def test_a_pool_timeout_and_a_lock_timeout_are_outages() -> None:
    assert is_outage(exc.TimeoutError("QueuePool limit of size 2 overflow 2 reached"))
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = exc.TimeoutError()
    assert is_outage(wrapped)
    assert trouble(wrapped) == "no database connection free in the pool"
    assert not is_outage(exc.ProgrammingError("SELECT", {}, Exception("syntax error")))


def test_a_dropped_connection_behind_a_pending_rollback_is_an_outage() -> None:
    """What Optuna raises when the server vanished mid-query (seen in CI): wait it out."""
    dropped = exc.OperationalError("SELECT", {}, Exception("server closed the connection"))
    pending = exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
    pending.__context__ = dropped  # raised while handling it, as SQLAlchemy does
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit")
    wrapped.__cause__ = pending
    assert is_outage(wrapped)

    bad_query = optuna.exceptions.StorageInternalError("commit failed")
    bad_query.__cause__ = exc.ProgrammingError("SELECT", {}, Exception("syntax error"))
    assert not is_outage(bad_query)


def test_a_lost_redis_connection_is_an_outage_a_redis_error_is_not() -> None:
    assert is_outage(redis.ConnectionError("Connection refused"))
    assert is_outage(redis.TimeoutError("Timeout reading from socket"))
    assert not is_outage(redis.ResponseError("WRONGTYPE"))


def test_an_outage_is_retried_until_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return "done"

    with caplog.at_level(logging.WARNING, logger="hpo.storages"):
        assert retrying(flaky, 30, "asking for a trial") == "done"
    assert "database unreachable while asking for a trial; retrying for up to 30 s" in caplog.text


def test_an_outage_past_the_limit_is_one_clear_error() -> None:
    def down() -> None:
        raise exc.OperationalError("SELECT", {}, Exception("connection refused"))

    with pytest.raises(DatabaseOutage, match="unreachable for 0 s while finishing: check"):
        retrying(down, 0, "finishing")


def test_a_bad_query_is_raised_at_once() -> None:
    def bad() -> None:
        raise exc.ProgrammingError("SELECT", {}, Exception("syntax error"))

    with pytest.raises(exc.ProgrammingError):
        retrying(bad, 30, "finishing")


STUDY = """
name: tiny_pg
objective: {_target_: tests.hpo.helpers.PriorObjective, sleep: SLEEP}
data: breast_cancer
cv: {scheme: kfold, n_splits: 2}
metric: roc_auc
n_trials: 12
space:
  x: {type: float, low: 0.0, high: 1.0}
"""


@pytest.fixture
def database() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    with new_database() as url:
        yield url


def load(url: str) -> optuna.Study:
    return Store("postgres", url, "tiny_pg").load()


def wait_for_finished(url: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = load(url)
            if len(study.get_trials(states=(TrialState.COMPLETE,))) >= n:
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} trials finished in {timeout} s")


class Proxy:
    """A TCP relay to PostgreSQL that can be cut: an outage without stopping the shared server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.open = False
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_an_outage_longer_than_the_limit_ends_workers_with_one_line_and_status_1(
    tmp_path: Path, database: str
) -> None:
    url = make_url(database)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    args = ("storage.outage_limit=3", "study.n_trials=50")
    study = STUDY.replace("SLEEP", "0.3")
    workers = start_workers(tmp_path, Store("postgres", through_proxy, "tiny_pg"), study, 2, *args)
    wait_for_finished(database, 2)
    before = {t.number for t in load(database).get_trials(states=(TrialState.COMPLETE,))}
    proxy.cut()
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 1, stderr
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "unreachable for" in lines[0], stderr
        assert "storage.outage_limit" in lines[0]
        assert "Traceback" not in stderr
    after = {t.number for t in load(database).get_trials(states=(TrialState.COMPLETE,))}
    assert before <= after, "finished trials are kept"
    runs = mlflow_runs(tmp_path, "tiny_pg")
    assert not [r for r in runs if r.info.status == "RUNNING"], "every MLflow run was closed"
