import threading

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storage import display_url, is_memory, mask, open_storage, study_lock

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
