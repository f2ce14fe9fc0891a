"""The storage contract, written once and run over every backend (see conftest.STORES).

What hpo relies on from any storage: a study and its trials survive a fresh
open, the study lock is exclusive across processes and per study, a dead
worker's trial is failed and retried (backends with heartbeats), outages are
told from bad queries, and URLs are shown without passwords.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest
import redis
from optuna.trial import TrialState
from sqlalchemy import create_engine, exc
from sqlalchemy.engine import make_url

from hpo.errors import UserError
from hpo.storages import (
    StaleTrials,
    backend_for,
    display_url,
    is_outage,
    max_retry,
    open_storage,
    optuna_url,
    study_lock,
)
from hpo.storages.registry import kind_of
from tests.hpo.storages.conftest import Store
from tests.hpo.storages.helpers import age_heartbeat, lock_and_count

WORKERS, ROUNDS = 3, 20


def test_a_study_and_its_trial_survive_a_fresh_open(store: Store) -> None:
    storage = open_storage(store.cfg())
    assert kind_of(storage) is type(backend_for(store.url)), "the lookups agree"
    study = optuna.create_study(study_name=store.study, storage=storage)
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("worker", "here:1")
    study.tell(trial, 2 * x)

    [again] = optuna.load_study(study_name=store.study, storage=open_storage(store.cfg())).trials
    assert again.params == {"x": x}
    assert again.value == pytest.approx(2 * x)
    assert again.user_attrs == {"worker": "here:1"}
    assert again.state == TrialState.COMPLETE


def test_the_study_lock_is_exclusive_across_processes(store: Store, tmp_path: Path) -> None:
    log, counter = tmp_path / "inside.log", tmp_path / "counter"
    counter.write_text("0")
    spawn = multiprocessing.get_context("spawn")
    args = (store.url, store.study, str(log), str(counter), ROUNDS)
    workers = [spawn.Process(target=lock_and_count, args=args) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert log.read_text() == "enter\nexit\n" * (WORKERS * ROUNDS), "two holders at once"
    assert counter.read_text() == str(WORKERS * ROUNDS), "an update inside the lock was lost"


def test_the_study_lock_is_per_study(store: Store) -> None:
    storage, other = open_storage(store.cfg()), open_storage(store.cfg())
    with study_lock(storage, store.study), study_lock(other, f"{store.study}-other"):
        pass  # another study's lock is free while this one is held (else: a hang)


def test_a_dead_workers_trial_is_failed_and_retried_from_anywhere(store: Store) -> None:
    if not backend_for(store.url).heartbeats:
        pytest.skip(f"{store.kind} has no heartbeats: its workers are local processes")
    cfg = store.cfg(heartbeat_interval=10, grace_period=30, max_retry=2)
    storage = open_storage(cfg)
    study = optuna.create_study(study_name=store.study, storage=storage)
    dead, alive = study.ask(), study.ask()
    dead.suggest_float("x", 0, 1)
    for trial in (dead, alive):
        storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    age_heartbeat(storage, dead._trial_id, 60)  # silent for twice the grace period

    elsewhere = optuna.load_study(study_name=store.study, storage=open_storage(cfg))
    optuna.storages.fail_stale_trials(elsewhere)

    assert [t.state for t in elsewhere.trials] == [
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.WAITING,
    ]
    retry = elsewhere.trials[2]
    assert retry.params == dead.params, "the same parameters are run again"
    assert retry.system_attrs["failed_trial"] == dead.number
    assert max_retry(elsewhere) == 2
    stale = elsewhere._storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    assert isinstance(stale, StaleTrials)
    assert [t.number for t in stale.drain()] == [dead.number], "kept for its MLflow run"


def _unreachable(store: Store) -> str:
    """``store``'s URL with a password, pointing at a port nobody listens on."""
    if store.kind == "postgres":
        url = make_url(store.url).set(password="canarypw", host="127.0.0.1", port=1)
        return url.render_as_string(hide_password=False)
    return "redis://:canarypw@127.0.0.1:1/0"


def test_an_unreachable_server_is_an_outage_and_a_user_error_without_the_password(
    store: Store,
) -> None:
    if store.kind in ("journal", "sqlite"):
        pytest.skip("a local file has no server to lose")
    url = _unreachable(store)
    with pytest.raises(UserError, match="cannot open storage") as err:
        open_storage(store.cfg().__class__(url=url))
    assert "canarypw" not in str(err.value) and "127.0.0.1:1" in str(err.value)
    assert is_outage(_lost(store, url))


def _lost(store: Store, url: str) -> BaseException:
    """The error a worker meets when ``store``'s server is gone."""
    try:
        if store.kind == "postgres":
            create_engine(url.replace("postgresql://", "postgresql+psycopg://")).connect()
        else:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as err:
        return err
    raise AssertionError("the unreachable server answered")


def test_a_bad_query_is_not_an_outage(store: Store) -> None:
    assert not is_outage(exc.ProgrammingError("SELECT", {}, Exception("syntax error")))
    assert not is_outage(redis.ResponseError("WRONGTYPE"))
    assert not is_outage(ValueError(store.url))


def test_urls_are_shown_without_a_password(store: Store) -> None:
    cfg = store.cfg()
    if store.kind in ("journal", "sqlite"):
        assert display_url(cfg) == store.url, "nothing to hide: shown as given"
        return
    url = _unreachable(store)
    shown = display_url(cfg.__class__(url=url))
    assert "canarypw" not in shown and "***" in shown and "127.0.0.1:1" in shown


def test_optunas_own_tools_open_the_url_as_given_to_them(store: Store) -> None:
    optuna.create_study(study_name=store.study, storage=open_storage(store.cfg()))
    url = optuna_url(store.url)
    if store.kind == "journal":
        assert Path(url).is_file(), "optuna-dashboard takes the journal file's path"
        storage: optuna.storages.BaseStorage | str = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(url)
        )
    elif store.kind == "redis":
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalRedisBackend(url))
    else:
        storage = url  # SQLAlchemy's URL, with the installed driver (psycopg)
    assert store.study in optuna.get_all_study_names(storage=storage)
