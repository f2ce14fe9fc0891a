"""PostgreSQL: parts and passwords, connection settings, and the advisory study lock's limits.

No test waits a fixed time for something to happen: a lock is held until the
test says so, and the server cutting a session off is shown by who got the
lock first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

import hpo.storages.postgres
from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storages import display_url, is_outage, open_storage, optuna_url, retrying, study_lock
from hpo.storages.postgres import pg_connect_args, psycopg_url
from tests.hpo.pg import admin, new_database
from tests.hpo.storages.helpers import Store, age_heartbeat, start_workers


def _from_parts(url: str) -> StorageConfig:
    """``url``'s host, port, database and user as storage.* parts, with storage.url empty."""
    u = make_url(url)
    return StorageConfig(url="", host=u.host, port=u.port, database=u.database, user=u.username)


def _rdb(cfg: StorageConfig) -> RDBStorage:
    storage = open_storage(cfg)
    assert isinstance(storage, RDBStorage)
    return storage


@pytest.fixture
def pg_url() -> Iterator[str]:
    with new_database() as url:
        yield url


def test_psycopg_is_the_driver_for_sqlalchemy_and_optunas_tools() -> None:
    assert psycopg_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert psycopg_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert optuna_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_the_users_options_come_after_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=5s")
    args = pg_connect_args("postgresql+psycopg://h/db?connect_timeout=3", timeouts=True)
    assert "connect_timeout" not in args, "the URL's own setting wins"
    assert args["options"].startswith("-c tcp_keepalives_idle=30 ")
    assert args["options"].endswith(
        "-c lock_timeout=60000ms "
        "-c idle_in_transaction_session_timeout=120000ms "
        "-c statement_timeout=5s"
    )
    assert "lock_timeout" not in pg_connect_args("postgresql://h/db", timeouts=False)["options"]


def test_unreachable_postgres_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError, match="cannot open storage") as err:
        open_storage(StorageConfig(url="postgresql://u:canarypw@127.0.0.1:1/x"))
    assert "canarypw" not in str(err.value)
    assert "127.0.0.1" in str(err.value)


@pytest.mark.postgres
def test_postgres_storage_from_parts_round_trip(pg_url: str) -> None:
    cfg = _from_parts(pg_url)
    storage = _rdb(cfg)
    optuna.create_study(study_name="s", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    [trial] = optuna.load_study(study_name="s", storage=open_storage(cfg)).trials
    assert set(trial.params) == {"x"}
    u = make_url(pg_url)
    assert display_url(cfg) == f"postgresql+psycopg://{u.username}@{u.host}:{u.port}/{u.database}"
    storage.engine.dispose()


@pytest.mark.postgres
def test_a_password_from_pgpassword_is_used_but_never_shown(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hpo-canary-pgpassword"
    monkeypatch.setenv("PGPASSWORD", secret)  # the test server trusts: any password works
    with caplog.at_level(logging.DEBUG):
        cfg = _from_parts(pg_url)
        storage = _rdb(cfg)
        optuna.create_study(study_name="s", storage=storage)
        shown = display_url(cfg)
        assert secret not in shown and "***" not in shown, "no password in the URL at all"
        assert secret not in storage.engine.url.render_as_string(hide_password=False)
        with storage.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        storage.engine.dispose()
        with pytest.raises(UserError) as err:
            open_storage(StorageConfig(url="", host="127.0.0.1", port=1, database="x"))
        assert secret not in str(err.value)
    assert secret not in caplog.text


@pytest.mark.postgres
def test_postgres_connections_have_keepalives_and_lock_timeouts(pg_url: str) -> None:
    storage = _rdb(StorageConfig(url=pg_url))
    names = ("lock_timeout", "idle_in_transaction_session_timeout", "tcp_keepalives_idle")
    names += ("tcp_keepalives_interval", "tcp_keepalives_count")
    with storage.engine.connect() as connection:
        show = {name: connection.execute(text(f"SHOW {name}")).scalar() for name in names}
        dsn = connection.connection.dbapi_connection.info.dsn  # type: ignore[union-attr]
    storage.engine.dispose()
    assert show["lock_timeout"] == "1min"
    assert show["idle_in_transaction_session_timeout"] == "2min"
    host = str(make_url(pg_url).host or "")
    if host not in ("", "localhost") and not host.startswith("/"):  # TCP: server keepalives
        assert (show["tcp_keepalives_idle"], show["tcp_keepalives_interval"]) == ("30", "10")
        assert show["tcp_keepalives_count"] == "3"
    for part in ("keepalives=1", "keepalives_idle=30", "connect_timeout=10"):
        assert part in dsn


@pytest.mark.postgres
def test_a_user_options_in_the_url_win_over_the_defaults(pg_url: str) -> None:
    storage = _rdb(StorageConfig(url=f"{pg_url}?options=-c%20lock_timeout%3D5s"))
    with storage.engine.connect() as connection:
        assert connection.execute(text("SHOW lock_timeout")).scalar() == "5s"
        assert connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
    storage.engine.dispose()


def _holding(
    storage: RDBStorage, held: threading.Event, release: threading.Event
) -> threading.Thread:
    def run() -> None:
        with study_lock(storage, "s"):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert held.wait(30)
    return thread


@pytest.mark.postgres
def test_a_study_lock_held_past_lock_timeout_is_retried_as_an_outage(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hpo.storages.postgres, "LOCK_TIMEOUT", 0.3)
    holder, waiter = _rdb(StorageConfig(url=pg_url)), _rdb(StorageConfig(url=pg_url))
    held, release = threading.Event(), threading.Event()
    thread = _holding(holder, held, release)
    attempts: list[int] = []

    def take() -> int:
        attempts.append(1)
        if len(attempts) > 1:  # the first attempt met the held lock; now let it go
            release.set()
            thread.join(30)
        with study_lock(waiter, "s"):
            return len(attempts)

    with caplog.at_level(logging.WARNING, logger="hpo.storages"):
        assert retrying(take, 60, "asking for a trial") == 2
    assert "lock_timeout while asking for a trial" in caplog.text
    for storage in (holder, waiter):
        storage.engine.dispose()


@pytest.mark.postgres
def test_a_silent_study_lock_holder_loses_the_lock(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that stops talking (its machine gone) holds the lock no longer than
    idle_in_transaction_session_timeout: the server ends its session.

    Only the lock's own session gets the short timeout: the silent storage is opened with
    the usual settings, then given an engine built with hpo's connection settings at 0.5 s,
    which nothing but the study lock uses. (With the short timeout from the start, a busy
    machine could pause inside one of the opening's transactions for that long.)
    """
    silent = _rdb(StorageConfig(url=pg_url))
    monkeypatch.setattr(hpo.storages.postgres, "IDLE_IN_TRANSACTION", 0.5)
    backend = hpo.storages.postgres.PostgreSQL(pg_url)
    url = backend.engine_url()
    silent.engine.dispose()
    silent.engine = create_engine(url, **backend.engine_kwargs(url))
    monkeypatch.undo()
    other = _rdb(StorageConfig(url=pg_url))
    held, got, done = threading.Event(), threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def hold() -> None:
        try:
            with study_lock(silent, "s"):
                held.set()
                got.wait(60)  # silent while another worker takes the lock
                done.set()
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(30)
    with study_lock(other, "s"):
        freed_by_the_server = not done.is_set()
        got.set()
    thread.join(30)
    assert freed_by_the_server, "the other worker got the lock while the holder still held it"
    assert failed and is_outage(failed[0]), "the cut-off holder sees an outage (retried)"
    for storage in (silent, other):
        storage.engine.dispose()


@pytest.mark.postgres
def test_a_trial_whose_worker_elsewhere_stopped_beating_is_failed_and_retried(
    pg_url: str,
) -> None:
    """The runner's recovery, as a worker on another machine meets it: no pid to check."""
    from hpo.runner import recover

    cfg = StorageConfig(url=pg_url, heartbeat_interval=10, grace_period=30, max_retry=1)
    storage = _rdb(cfg)
    study = optuna.create_study(study_name="s", storage=storage)
    dead, alive = study.ask(), study.ask()
    dead.suggest_float("x", 0, 1)
    for trial in (dead, alive):
        trial.set_user_attr("worker", "another-machine:4242")
        storage.record_heartbeat(trial._trial_id)
    age_heartbeat(storage, dead._trial_id, 60)

    elsewhere = optuna.load_study(study_name="s", storage=open_storage(cfg))
    recover(elsewhere, tracker=None)

    assert [t.state for t in elsewhere.trials] == [
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.WAITING,
    ]
    assert elsewhere.trials[2].params == dead.params, "the same parameters are run again"
    assert elsewhere.trials[2].system_attrs["failed_trial"] == dead.number
    storage.engine.dispose()


def test_a_query_error_is_not_an_outage() -> None:
    assert not is_outage(exc.ProgrammingError("SELECT", {}, Exception("syntax error")))


KILLED_STUDY = """
name: tiny_killed
objective: {_target_: tests.hpo.helpers.PriorObjective, sleep: 0.2}
data: breast_cancer
cv: {scheme: kfold, n_splits: 2}
metric: roc_auc
n_trials: 10
space:
  x: {type: float, low: 0.0, high: 1.0}
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_connections_killed_every_second_are_waited_out_and_no_trial_fails(
    pg_url: str, tmp_path: Path
) -> None:
    """pg_terminate_backend on every connection of the study's database, every second, for
    as long as the workers run: the sampler's, the pruner's and the claim's reads are
    outages to wait out, so every trial completes (issue 11, defect 4)."""
    store = Store("postgres", pg_url, "tiny_killed")
    database = make_url(pg_url).database
    workers = start_workers(tmp_path, store, KILLED_STUDY, 2, "pruner=median")
    kills = 0
    with admin() as connection:
        while any(w.poll() is None for w in workers):
            found = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
            kills += int(found[0]) if found else 0
            time.sleep(1.0)
    said = ""
    for worker in workers:
        _, stderr = worker.communicate(timeout=60)
        said += stderr
        assert worker.returncode == 0, stderr
    assert kills > 0, "the loop killed connections while the workers ran"
    assert "Traceback" not in said and "invalid data in the commit" not in said
    trials = store.load().trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 10
    ran_and_failed = [
        t.user_attrs.get("fail_reason")
        for t in trials
        if t.state == TrialState.FAIL and "connection dropped" not in t.user_attrs["fail_reason"]
    ]
    assert ran_and_failed == [], "only trials no worker ran (their claim lost) may fail"
