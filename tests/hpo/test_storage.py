import logging
import threading
import time

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState
from sqlalchemy import exc, text
from sqlalchemy.engine import make_url

import hpo.storage
from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storage import (
    display_url,
    is_memory,
    is_outage,
    mask,
    open_storage,
    retrying,
    storage_url,
    study_lock,
)
from tests.hpo.pg import new_database

# --- mask --------------------------------------------------------------------


def test_mask_hides_the_password():
    assert mask("postgresql://user:secret@host/db") == "postgresql://user:***@host/db"


def test_mask_hides_the_password_with_a_driver_and_port():
    masked = mask("postgresql+psycopg://user:s3cr%40t@db.example.org:5432/optuna")
    assert masked == "postgresql+psycopg://user:***@db.example.org:5432/optuna"


def test_mask_hides_every_password_in_a_message():
    masked = mask("cannot reach postgresql://a:pw1@h1/db nor mysql://b:pw2@h2/db")
    assert masked == "cannot reach postgresql://a:***@h1/db nor mysql://b:***@h2/db"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@host/db",
        "postgresql://user@host:5432/db",
        "sqlite:///tmp/optuna.db",
        "journal:optuna.journal",
    ],
)
def test_mask_leaves_urls_without_a_password_unchanged(url):
    assert mask(url) == url


def test_display_url_hides_the_password():
    shown = display_url(StorageConfig(url="postgresql://user:secret@host/db"))
    assert "secret" not in shown
    assert "user" in shown
    assert "host/db" in shown


# --- open_storage ------------------------------------------------------------


def _add_trial(storage, name):
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, x * 2)
    return x


def _reload(url, name):
    return optuna.load_study(study_name=name, storage=open_storage(StorageConfig(url=url)))


def test_journal_storage_round_trip(tmp_path):
    url = f"journal:{tmp_path / 'sub' / 'optuna.journal'}"
    storage = open_storage(StorageConfig(url=url))
    assert isinstance(storage, JournalStorage)
    x = _add_trial(storage, "s")

    [trial] = _reload(url, "s").trials
    assert trial.params == {"x": x}
    assert trial.value == pytest.approx(2 * x)
    assert (tmp_path / "sub" / "optuna.journal").is_file()


def test_sqlite_storage_round_trip(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(StorageConfig(url=url))
    assert isinstance(storage, RDBStorage)
    x = _add_trial(storage, "s")

    [trial] = _reload(url, "s").trials
    assert trial.params == {"x": x}
    assert trial.value == pytest.approx(2 * x)


def test_url_whitespace_is_ignored(tmp_path):
    path = tmp_path / "optuna.journal"
    storage = open_storage(StorageConfig(url=f"  journal:{path}\n"))
    _add_trial(storage, "s")
    assert path.is_file()


def test_unsupported_scheme_is_a_user_error_without_the_password():
    with pytest.raises(UserError, match="is not supported: use journal:PATH") as err:
        open_storage(StorageConfig(url="mongodb://u:hunter2@localhost/0"))
    assert "hunter2" not in str(err.value)


def test_unreachable_postgres_is_a_user_error_without_the_password():
    with pytest.raises(UserError, match="cannot open storage") as err:
        open_storage(StorageConfig(url="postgresql://u:canarypw@127.0.0.1:1/x"))
    assert "canarypw" not in str(err.value)
    assert "127.0.0.1" in str(err.value)


def test_in_memory_storage_is_recognised(tmp_path):
    assert is_memory(optuna.storages.InMemoryStorage())
    assert not is_memory(open_storage(StorageConfig(url=f"journal:{tmp_path / 'j'}")))


# --- study_lock --------------------------------------------------------------


def _contender(storage, name, acquired, release):
    """A thread that takes the lock, says so, and holds it until told to release."""

    def run():
        with study_lock(storage, name):
            acquired.set()
            release.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("scheme", ["journal", "sqlite"])
def test_study_lock_is_exclusive_while_held(tmp_path, scheme):
    url = f"journal:{tmp_path / 'j'}" if scheme == "journal" else f"sqlite:///{tmp_path / 'd.db'}"
    storage = open_storage(StorageConfig(url=url))
    acquired, release = threading.Event(), threading.Event()
    with study_lock(storage, "study/1"):
        thread = _contender(storage, "study/1", acquired, release)
        assert not acquired.wait(0.5), "a second holder got the lock while it was held"
    assert acquired.wait(5), "the lock was not handed over after release"
    release.set()
    thread.join(5)
    assert not thread.is_alive()


def test_study_lock_is_per_study(tmp_path):
    storage = open_storage(StorageConfig(url=f"journal:{tmp_path / 'j'}"))
    acquired, release = threading.Event(), threading.Event()
    with study_lock(storage, "a"):
        thread = _contender(storage, "b", acquired, release)
        assert acquired.wait(5), "another study's lock blocked"
        release.set()
    thread.join(5)


def test_study_lock_is_shared_across_storage_objects(tmp_path):
    """Two processes open their own storage on the same file; the lock must still bind."""
    url = f"journal:{tmp_path / 'j'}"
    acquired, release = threading.Event(), threading.Event()
    with study_lock(open_storage(StorageConfig(url=url)), "s"):
        thread = _contender(open_storage(StorageConfig(url=url)), "s", acquired, release)
        assert not acquired.wait(0.5)
    assert acquired.wait(5)
    release.set()
    thread.join(5)


def test_study_lock_on_memory_storage_does_not_block():
    storage = optuna.storages.InMemoryStorage()
    with study_lock(storage, "s"), study_lock(storage, "s"):
        study = optuna.create_study(study_name="s", storage=storage)
    assert study.study_name == "s"


# --- PostgreSQL from parts, and its timeouts ------------------------------------


def _from_parts(url: str) -> StorageConfig:
    """``url``'s host, port, database and user as storage.* parts, with storage.url empty."""
    u = make_url(url)
    return StorageConfig(url="", host=u.host, port=u.port, database=u.database, user=u.username)


def test_parts_make_a_postgres_url_without_a_password():
    cfg = StorageConfig(url="", host="db.example.org", database="optuna", user="hpo")
    assert storage_url(cfg) == "postgresql+psycopg://hpo@db.example.org/optuna"
    cfg = StorageConfig(url="", host="db", port=6432, database="optuna")
    assert storage_url(cfg) == "postgresql+psycopg://db:6432/optuna"


def test_a_set_url_wins_over_parts(caplog, tmp_path):
    url = f"journal:{tmp_path / 'j'}"
    cfg = StorageConfig(url=url, host="db.example.org", database="optuna")
    assert storage_url(cfg) == url
    with caplog.at_level(logging.WARNING, logger="hpo.storage"):
        assert isinstance(open_storage(cfg), JournalStorage)
    assert "storage.host/database are ignored" in caplog.text


@pytest.mark.parametrize("url", ["", "  "])
def test_no_url_and_no_parts_is_a_one_line_user_error_naming_both_ways(url):
    with pytest.raises(UserError) as err:
        open_storage(StorageConfig(url=url))
    message = str(err.value)
    assert "\n" not in message
    assert "HPO_STORAGE_URL=postgresql://" in message
    assert "storage.host=" in message and "storage.database=" in message
    assert "PGPASSWORD" in message and ".pgpass" in message
    assert display_url(StorageConfig(url=url)) == "(no storage.url)"


def test_unreachable_parts_are_a_user_error_naming_the_parts():
    cfg = StorageConfig(url="", host="127.0.0.1", port=1, database="x", user="u")
    with pytest.raises(UserError, match="cannot open storage") as err:
        open_storage(cfg)
    assert "127.0.0.1:1/x" in str(err.value)
    assert "storage.host/port/database/user" in str(err.value)


def test_a_pool_timeout_and_a_lock_timeout_are_outages():
    assert is_outage(exc.TimeoutError("QueuePool limit of size 2 overflow 2 reached"))
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = exc.TimeoutError()
    assert is_outage(wrapped)
    assert not is_outage(exc.ProgrammingError("SELECT", {}, Exception("syntax error")))


@pytest.mark.postgres
def test_postgres_storage_from_parts_round_trip():
    with new_database() as url:
        cfg = _from_parts(url)
        storage = open_storage(cfg)
        assert isinstance(storage, RDBStorage)
        x = _add_trial(storage, "s")

        [trial] = optuna.load_study(study_name="s", storage=open_storage(cfg)).trials
        assert trial.params == {"x": x}
        u = make_url(url)
        expected = f"postgresql+psycopg://{u.username}@{u.host}:{u.port}/{u.database}"
        assert display_url(cfg) == expected
        storage.engine.dispose()


@pytest.mark.postgres
def test_a_password_from_pgpassword_is_used_but_never_shown(monkeypatch, caplog):
    secret = "hpo-canary-pgpassword"
    monkeypatch.setenv("PGPASSWORD", secret)  # the test server trusts: any password works
    with new_database() as url, caplog.at_level(logging.DEBUG):
        cfg = _from_parts(url)
        storage = open_storage(cfg)
        assert isinstance(storage, RDBStorage)
        _add_trial(storage, "s")
        shown = display_url(cfg)
        assert secret not in shown and "***" not in shown, "no password in the URL at all"
        assert secret not in str(storage.engine.url)
        assert secret not in storage.engine.url.render_as_string(hide_password=False)
        with storage.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        storage.engine.dispose()
        with pytest.raises(UserError) as err:
            open_storage(StorageConfig(url="", host="127.0.0.1", port=1, database="x"))
        assert secret not in str(err.value)
    assert secret not in caplog.text


@pytest.mark.postgres
def test_postgres_connections_have_keepalives_and_lock_timeouts():
    with new_database() as url:
        storage = open_storage(StorageConfig(url=url))
        assert isinstance(storage, RDBStorage)
        with storage.engine.connect() as connection:
            show = {
                name: connection.execute(text(f"SHOW {name}")).scalar()
                for name in (
                    "lock_timeout",
                    "idle_in_transaction_session_timeout",
                    "tcp_keepalives_idle",
                    "tcp_keepalives_interval",
                    "tcp_keepalives_count",
                )
            }
            dsn = connection.connection.dbapi_connection.info.dsn
        storage.engine.dispose()
    assert show["lock_timeout"] == "1min"
    assert show["idle_in_transaction_session_timeout"] == "2min"
    if make_url(url).host not in (None, "", "localhost") and not str(make_url(url).host).startswith(
        "/"
    ):  # TCP, not a Unix socket: the server's keepalives apply
        assert (show["tcp_keepalives_idle"], show["tcp_keepalives_interval"]) == ("30", "10")
        assert show["tcp_keepalives_count"] == "3"
    for part in ("keepalives=1", "keepalives_idle=30", "connect_timeout=10"):
        assert part in dsn


@pytest.mark.postgres
def test_a_user_options_in_the_url_win_over_the_defaults():
    with new_database() as url:
        storage = open_storage(StorageConfig(url=f"{url}?options=-c%20lock_timeout%3D5s"))
        assert isinstance(storage, RDBStorage)
        with storage.engine.connect() as connection:
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "5s"
            assert connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
        storage.engine.dispose()


def _hold(storage, name, held, seconds):
    """A thread that takes the study lock, says so, and keeps it for ``seconds``."""

    def run():
        with study_lock(storage, name):
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert held.wait(10)
    return thread


@pytest.mark.postgres
def test_a_study_lock_held_past_lock_timeout_is_retried_as_an_outage(monkeypatch, caplog):
    monkeypatch.setattr(hpo.storage, "LOCK_TIMEOUT", 0.3)
    with new_database() as url:
        holder, waiter = (open_storage(StorageConfig(url=url)) for _ in range(2))
        held = threading.Event()
        thread = _hold(holder, "s", held, 2.0)
        with pytest.raises(exc.OperationalError) as err, study_lock(waiter, "s"):
            pass
        assert is_outage(err.value), "a lock_timeout is waited out, not a crash"

        def take() -> float:
            with study_lock(waiter, "s"):
                return time.monotonic()

        with caplog.at_level(logging.WARNING, logger="hpo.storage"):
            taken = retrying(take, 30, "asking for a trial")
        thread.join(10)
        assert not thread.is_alive()
        assert "lock_timeout while asking for a trial" in caplog.text
        for storage in (holder, waiter):
            assert isinstance(storage, RDBStorage)
            storage.engine.dispose()
    assert taken > 0


@pytest.mark.postgres
def test_a_silent_study_lock_holder_loses_the_lock(monkeypatch):
    """A holder that stops talking (its machine gone) holds the lock no longer than
    idle_in_transaction_session_timeout: the server ends its session."""
    monkeypatch.setattr(hpo.storage, "IDLE_IN_TRANSACTION", 0.5)
    with new_database() as url:
        silent = open_storage(StorageConfig(url=url))
        monkeypatch.undo()
        other = open_storage(StorageConfig(url=url))
        held, got = threading.Event(), threading.Event()
        failed: list[BaseException] = []

        def hold():
            try:
                with study_lock(silent, "s"):
                    held.set()
                    got.wait(10)  # silent while another worker takes the lock
            except BaseException as err:
                failed.append(err)

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        assert held.wait(10)
        started = time.monotonic()
        with study_lock(other, "s"):
            waited = time.monotonic() - started
            got.set()
        thread.join(10)
        assert waited < 5, f"the lock was freed after {waited:.1f} s"
        assert failed and is_outage(failed[0]), "the cut-off holder sees an outage (retried)"
        for storage in (silent, other):
            assert isinstance(storage, RDBStorage)
            storage.engine.dispose()


@pytest.mark.postgres
def test_a_trial_whose_worker_elsewhere_stopped_beating_is_failed_and_retried():
    """The heartbeat path, as a worker on another machine meets it: no pid to check here."""
    from hpo.study import recover

    with new_database() as url:
        cfg = StorageConfig(url=url, heartbeat_interval=1, grace_period=1, max_retry=1)
        storage = open_storage(cfg)
        study = optuna.create_study(study_name="s", storage=storage)
        dead, alive = study.ask(), study.ask()
        dead.suggest_float("x", 0, 1)
        for trial in (dead, alive):
            trial.set_user_attr("worker", "another-machine:4242")
            storage.record_heartbeat(trial._trial_id)
        time.sleep(2.5)
        storage.record_heartbeat(alive._trial_id)  # this one's worker is still beating

        elsewhere = optuna.load_study(study_name="s", storage=open_storage(cfg))
        recover(elsewhere, tracker=None)

        states = [t.state for t in elsewhere.trials]
        assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
        retry = elsewhere.trials[2]
        assert retry.params == dead.params, "the same parameters are run again"
        assert retry.system_attrs["failed_trial"] == dead.number
        storage.engine.dispose()


def test_a_dropped_connection_behind_a_pending_rollback_is_an_outage():
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
