"""The defaults every backend inherits from Backend, on a URL no real backend serves."""

from __future__ import annotations

import contextlib

import pytest

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storages.base import Backend

URL = "  nostore://alice:hunter2@db.example:1/x  "


def test_a_backend_keeps_its_url_stripped_and_a_config_for_it() -> None:
    backend = Backend(URL)
    assert backend.url == URL.strip()
    assert backend.cfg == StorageConfig(url=URL.strip())
    given = StorageConfig(url="other", max_retry=7)
    assert Backend(URL, given).cfg is given


def test_the_default_locks_are_null_contexts() -> None:
    backend = Backend(URL)
    assert isinstance(Backend.study_lock(None, "s"), contextlib.nullcontext)  # type: ignore[arg-type]
    assert isinstance(backend.init_lock("optuna-schema"), contextlib.nullcontext)
    with backend.init_lock("a"), backend.init_lock("a"):  # never excludes, not even itself
        pass


def test_the_default_night_lock_refuses_on_entering_without_the_password() -> None:
    lock = Backend(URL).night_lock("study", "2024-01-01")  # asking for it does not refuse yet
    with pytest.raises(UserError, match="schedule=nightly cannot lock storage") as err, lock:
        raise AssertionError("the night lock was granted")
    assert "hunter2" not in str(err.value) and "alice:***@db.example" in str(err.value)


def test_shown_masks_the_password_and_optuna_gets_the_url_as_given() -> None:
    backend = Backend(URL)
    assert backend.shown() == "nostore://alice:***@db.example:1/x"
    assert backend.for_optuna() == URL.strip()


def test_the_base_serves_nothing_and_knows_no_outage() -> None:
    assert not Backend.handles("nostore://x")  # no schemes of its own
    assert not Backend.owns(None)  # type: ignore[arg-type]
    assert Backend(URL).file() is None
    assert not Backend.lost_connection(ConnectionError("gone"))
    assert Backend.trouble(ConnectionError("gone")) is None
    with pytest.raises(NotImplementedError):
        Backend(URL).open()
