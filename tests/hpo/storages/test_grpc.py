"""The gRPC proxy: one study lock with direct workers, freed by a dying holder, few database
connections for many workers, and one line for what it cannot do.

The contract suite (test_contract.py) runs every storage test over the proxy too; these are
the proxy's own. Each test gets a new database and a real proxy process in front of it. No
test waits a fixed time for something to happen: waits are bounds on failing, not margins.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import optuna
import psycopg
import pytest
from hydra import compose, initialize_config_dir
from optuna.storages import RDBStorage
from optuna.storages._grpc.auto_generated import api_pb2_grpc
from optuna.storages._grpc.servicer import OptunaStorageProxyService
from optuna.trial import TrialState
from sqlalchemy import exc

from hpo.config import CONF_DIR, StorageConfig, typed
from hpo.errors import UserError
from hpo.storages import (
    display_url,
    is_outage,
    open_storage,
    retrying,
    storage_url,
    study_lock,
)
from hpo.storages.postgres import lock_key
from hpo.storages.proxy.command import ProxyConfig
from hpo.storages.proxy.server import Outages
from tests.hpo.pg import admin, new_database
from tests.hpo.storages.helpers import (
    REPO,
    Store,
    lockstep_study,
    proxy,
    start_workers,
    wait_for,
    wait_ok,
)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
STUDY = "proxied"


def test_storage_grpc_is_the_proxy_at_storage_host_and_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = typed(compose("config", overrides=["storage=grpc", "storage.host=proxy"]))
    assert storage_url(cfg.storage) == "grpc://proxy:13000"
    assert display_url(cfg.storage) == "grpc://proxy:13000"
    with caplog.at_level("WARNING"), pytest.raises(UserError, match="cannot open storage"):
        open_storage(cfg.storage)  # nobody listens on host "proxy"
    assert "ignored" not in caplog.text, "host and port are the URL's own, not PostgreSQL parts"


def test_a_grpc_url_without_a_host_is_a_user_error() -> None:
    with pytest.raises(UserError, match="names no proxy: use grpc://HOST:PORT"):
        open_storage(StorageConfig(url="grpc://:13000"))


@pytest.fixture
def proxied() -> Iterator[SimpleNamespace]:
    """A new database and a proxy in front of it: ``url`` (grpc://) and ``database``."""
    with new_database() as database, proxy(database) as url:
        yield SimpleNamespace(url=url, database=database, name=database.rsplit("/", 1)[1])


def _through(url: str) -> Any:
    return open_storage(StorageConfig(url=url))


def _free(database: str, key: int) -> bool:
    """Whether the advisory lock ``key`` is free in ``database`` (taken and let go at once)."""
    with psycopg.connect(database, autocommit=True) as connection:
        row = connection.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def _waiting(name: str) -> int:
    """Advisory lock requests waiting (not granted) in database ``name``."""
    with admin() as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
def test_workers_through_the_proxy_and_on_the_database_share_one_study_lock(
    proxied: SimpleNamespace,
) -> None:
    through = _through(proxied.url)
    key = lock_key(STUDY)
    with study_lock(through, STUDY):
        assert not _free(proxied.database, key), "the proxy holds the direct workers' lock"
    assert _free(proxied.database, key), "and lets it go with the stream"

    direct = open_storage(StorageConfig(url=proxied.database))
    got = threading.Event()

    def take() -> None:
        with study_lock(through, STUDY):
            got.set()

    with study_lock(direct, STUDY):
        taker = threading.Thread(target=take)
        taker.start()
        wait_for(lambda: _waiting(proxied.name), "the proxy waiting in the database")
        assert not got.is_set(), "the proxy took a lock a direct worker holds"
    taker.join(60)
    assert got.is_set(), "the proxy got the lock once the direct worker let it go"


def _hold_until_killed(url: str, flag: str) -> None:
    storage = _through(url)
    with study_lock(storage, STUDY):
        Path(flag).write_text(str(os.getpid()))
        while True:
            time.sleep(1)


@pytest.mark.postgres
def test_a_killed_lock_holder_frees_the_study_lock(
    proxied: SimpleNamespace, tmp_path: Path
) -> None:
    flag = tmp_path / "held"
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold_until_killed, args=(proxied.url, str(flag))
    )
    holder.start()
    wait_for(flag.exists, "the holder taking the lock")
    assert not _free(proxied.database, lock_key(STUDY))
    os.kill(holder.pid or 0, signal.SIGKILL)
    holder.join(30)

    got = threading.Event()

    def take() -> None:
        with study_lock(_through(proxied.url), STUDY):
            got.set()

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    taker.join(60)  # a bound on failing: the proxy sees the stream end as the process dies
    assert got.is_set(), "the dead holder's lock was never let go"


def _connections(name: str) -> int:
    with admin() as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
def test_eight_workers_through_the_proxy_use_its_few_database_connections(
    proxied: SimpleNamespace,
) -> None:
    """However many workers, the database sees the proxy's steady pool (``pool=4``), never
    more; direct, each worker would keep its own (PostgreSQL.pool_size + max_overflow)."""
    pool = ProxyConfig().pool
    optuna.create_study(study_name=STUDY, storage=_through(proxied.url))
    peak, running = [0], threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            peak[0] = max(peak[0], _connections(proxied.name))

    def work() -> None:
        storage = _through(proxied.url)
        study = optuna.load_study(study_name=STUDY, storage=storage)
        for _ in range(5):
            with study_lock(storage, STUDY):
                trial = study.ask()
            study.tell(trial, trial.suggest_float("x", 0, 1))

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    running.clear()
    watcher.join(30)

    trials = optuna.load_study(study_name=STUDY, storage=_through(proxied.url)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 40
    assert 1 <= peak[0] <= pool, f"{peak[0]} connections, the proxy's pool holds {pool}"


@pytest.mark.postgres
def test_a_restarted_proxy_is_waited_out_like_a_database_restart() -> None:
    """Stopped and started again on its port: a worker's calls in between are an
    outage, retried until the new proxy answers; nothing recorded is lost."""
    with new_database() as database:
        with proxy(database) as url:
            storage = _through(url)
            study = optuna.create_study(study_name=STUDY, storage=storage)
            study.tell(study.ask(), 1.0)
        with pytest.raises(grpc.RpcError) as down:
            study.get_trials()
        assert is_outage(down.value)
        port = url.rsplit(":", 1)[1]
        seen: list[int] = []
        caller = threading.Thread(
            target=lambda: seen.append(
                len(retrying(lambda: study.get_trials(), 120, "reading the trials"))
            )
        )
        caller.start()
        with proxy(database, f"port={port}"):
            caller.join(120)
            with study_lock(storage, STUDY):
                study.tell(study.ask(), 2.0)
        assert seen == [1], "the call waited for the new proxy and read the study"
        assert [t.value for t in _trials(database)] == [1.0, 2.0]


def _trials(database: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(
        study_name=STUDY, storage=open_storage(StorageConfig(url=database))
    ).trials


@pytest.mark.postgres
def test_lock_requests_past_half_the_threads_are_refused_as_an_outage() -> None:
    """threads=2: one lock request may wait or hold; the next is refused at once (the worker
    retries it), so that waiters never take the threads the holder's calls need."""
    with new_database() as database, proxy(database, "threads=2") as url:
        first, second = _through(url), _through(url)
        with study_lock(first, STUDY):
            with pytest.raises(grpc.RpcError) as refused, study_lock(second, "another"):
                pass
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "threads=" in refused.value.details()
            assert is_outage(refused.value)
            optuna.create_study(study_name=STUDY, storage=first)  # storage calls still pass
        with study_lock(second, "another"):
            pass


@pytest.mark.postgres
def test_a_plain_optuna_proxy_is_refused_naming_hpos() -> None:
    with new_database() as database:
        server = grpc.server(ThreadPoolExecutor(max_workers=4))
        storage = RDBStorage(database.replace("postgresql://", "postgresql+psycopg://"))
        api_pb2_grpc.add_StorageServiceServicer_to_server(
            OptunaStorageProxyService(storage), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with pytest.raises(UserError, match="plain Optuna proxy") as err:
                _through(f"grpc://127.0.0.1:{port}")
            assert "python -m hpo.storages.proxy storage=postgres" in str(err.value)
        finally:
            server.stop(0).wait()
            storage.engine.dispose()


def _proxy_command(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HPO_STORAGE_URL": url}
    command = [sys.executable, "-m", "hpo.storages.proxy", "port=0", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_proxy_refuses_a_storage_it_cannot_serve_in_one_line() -> None:
    done = _proxy_command("storage=local", url="")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: the gRPC proxy serves PostgreSQL, not journal file")


@pytest.mark.postgres
def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    done = _proxy_command(url="postgresql://hpo:canarypw@127.0.0.1:1/optuna")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot open storage") and "***" in line
    assert "canarypw" not in done.stdout + done.stderr


class _Aborted(Exception):
    pass


class _Context:
    code: Any = None

    def abort(self, code: Any, details: str) -> None:
        self.code, self.details = code, details
        raise _Aborted


def _guarded(error: Exception) -> Any:
    def fails(request: bytes, context: Any) -> bytes:
        raise error

    handler = grpc.unary_unary_rpc_method_handler(fails)
    return Outages().intercept_service(lambda d: handler, SimpleNamespace(method="/m")).unary_unary


def test_a_database_outage_behind_the_proxy_reaches_workers_as_unavailable() -> None:
    context = _Context()
    lost = exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    with pytest.raises(_Aborted):
        _guarded(lost)(b"", context)
    assert context.code == grpc.StatusCode.UNAVAILABLE, "waited out by the worker"

    other = _Context()
    with pytest.raises(KeyError):  # anything else is not an outage: as it was
        _guarded(KeyError("trial 7"))(b"", other)
    assert other.code is None


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_through_the_proxy_and_on_the_database_meet_one_budget_exactly(
    proxied: SimpleNamespace, tmp_path: Path
) -> None:
    """Two workers through the proxy (one ``workers=2`` command: gRPC does not survive fork,
    so it starts them as commands) and one on the database, in lockstep (all ask at once).

    End to end; that the two kinds exclude each other is shown deterministically by
    test_workers_through_the_proxy_and_on_the_database_share_one_study_lock."""
    through = Store("grpc", proxied.url, STUDY)
    direct = Store("postgres", proxied.database, STUDY)
    spec = lockstep_study(tmp_path, STUDY, 3, 10, fail_above=0.75)
    args = ("sampler=random", "tracking.enabled=false", "trials_only=true")
    workers = start_workers(tmp_path, through, spec, 1, *args, "workers=2")
    workers += start_workers(tmp_path, direct, spec, 1, *args)
    wait_ok(workers)

    trials = direct.load().trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 10, "exactly the budget, however many asked at once"
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    pids = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials}
    assert len(pids) == 3, "all three took trials"
    assert workers[1].pid in pids and workers[0].pid not in pids, "the fan-out's two did"
