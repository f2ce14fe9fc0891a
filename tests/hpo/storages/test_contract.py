"""The storage contract, written once and run over every backend (see conftest.KINDS).

What hpo relies on from any storage: a study and its trials survive a fresh
open, the study lock is exclusive across processes and per study, a dead
worker's trial is failed and retried (backends with heartbeats), outages are
told from bad queries, and URLs are shown without passwords. Then the same,
end to end, with worker processes (``python -m hpo``) on one study: started
together they meet the budget exactly and never evaluate a grid point twice,
and a killed worker's trial is run again. SQLite serves one worker: there, one.
"""

from __future__ import annotations

import multiprocessing
import signal
from pathlib import Path

import optuna
import pytest
import redis
from mlflow.tracking import MlflowClient
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
    storage_line,
    study_lock,
)
from hpo.storages.grpc import ProxyStorage
from hpo.storages.registry import kind_of
from tests.hpo.storages.helpers import (
    HOLD_STUDY,
    Store,
    age_heartbeat,
    held_trial,
    lock_and_count,
    lockstep_study,
    mlflow_runs,
    start_workers,
    wait_ok,
)

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
    age_heartbeat(store.beats(storage), dead._trial_id, 60)  # silent for twice the grace period

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
    if store.kind == "grpc":
        return "grpc://:canarypw@127.0.0.1:1"  # no password is ever needed, but none is shown
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
        elif store.kind == "grpc":
            ProxyStorage("127.0.0.1", 1).hello(timeout=10)
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
    if not backend_for(store.url).optuna_tools:
        pytest.skip(f"Optuna's tools cannot open a {store.kind} URL: they open the database")
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


def test_the_summary_names_the_storage_as_optuna_s_cli_opens_it(store: Store) -> None:
    """The summary's line, run as printed: ``optuna studies --storage ...`` lists the study."""
    import subprocess
    import sys

    optuna.create_study(study_name=store.study, storage=open_storage(store.cfg()))
    line = storage_line(store.cfg())
    if not backend_for(store.url).optuna_tools:  # the proxy: its database is Optuna's to open
        assert line.startswith(store.url) and "give them the database it serves" in line
        return
    given = line.split("optuna studies --storage ", 1)[1].split(";")[0]
    assert "canarypw" not in line
    if store.kind == "redis":  # Optuna's journal on Redis: the CLI guesses it from redis://
        assert given.startswith("redis")
    optuna_cli = str(Path(sys.executable).parent / "optuna")  # the console script users run
    cli = [optuna_cli, "studies", "--storage", given, "-f", "json"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert store.study in done.stdout
    assert f"optuna-dashboard {given})" in line


# --- worker processes on one study ---------------------------------------------------------------


@pytest.mark.slow
def test_workers_started_together_on_an_empty_store_meet_the_budget_exactly(
    store: Store, tmp_path: Path
) -> None:
    """In lockstep (all take a trial before any ends), so the trials are always shared."""
    n = store.workers
    workers = start_workers(tmp_path, store, lockstep_study(tmp_path, store.study, n, 6), n)
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert "already exists" not in stderr

    study = store.load()
    assert len(study.trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    runs = mlflow_runs(tmp_path, store.study)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1, "one parent run, however many workers started at once"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(int(r.data.tags["hpo.trial"]) for r in children) == list(range(6))
    if n > 1:
        assert {r.data.tags["hpo.pid"] for r in children} != {children[0].data.tags["hpo.pid"]}


@pytest.mark.slow
def test_workers_in_lockstep_never_evaluate_a_grid_point_twice(
    store: Store, tmp_path: Path
) -> None:
    # 7 points: after two rounds of 3, all three workers ask at once for the last one;
    # without the lock, the extra trials would re-evaluate points (Optuna's grid sampler)
    grid = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    space = f"{{type: float, low: 0.0, high: 1.0, grid: {grid}}}"
    n = store.workers
    spec = lockstep_study(tmp_path, store.study, n, 20, space)  # the budget is capped at the grid
    args = ("sampler=grid", "tracking.enabled=false", "trials_only=true")  # trials only
    wait_ok(start_workers(tmp_path, store, spec, n, *args))

    trials = store.load().trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(grid)
    points = [t.params["x"] for t in trials]
    assert sorted(points) == grid, f"each of the {len(grid)} grid points once: {points}"
    if n > 1:
        assert len({t.user_attrs["worker"] for t in trials}) > 1, "the grid was shared"


@pytest.mark.slow
def test_workers_reaching_the_budget_together_meet_it_exactly_despite_failures(
    store: Store, tmp_path: Path
) -> None:
    """All ask at the same instants, also at the budget boundary, where a failing trial
    (x above 0.75: trials 1 and 10 of this seed) leaves a place that one more trial takes."""
    n = store.workers
    spec = lockstep_study(tmp_path, store.study, n, 10, fail_above=0.75)
    args = ("sampler=random", "tracking.enabled=false", "trials_only=true")  # trials only
    wait_ok(start_workers(tmp_path, store, spec, n, *args))

    trials = store.load().trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == 10, "exactly the budget, however many asked at once"
    assert failed, "some trials failed on purpose"
    assert len(complete) + len(failed) == len(trials), "nothing left running or pruned"
    assert all(t.params["x"] > 0.75 for t in failed)
    assert all(t.params["x"] <= 0.75 for t in complete)
    if n > 1:
        assert len({t.user_attrs["worker"] for t in trials}) > 1, "the trials were shared"


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_retried_and_its_run_killed(
    store: Store, tmp_path: Path
) -> None:
    """SIGKILL: nothing of the worker runs. The other worker fails its trial and runs it again
    (it cannot finish the budget before: the trial holds a place); on SQLite, which serves one
    worker, the next worker started does, as it opens the study."""
    hold = tmp_path / "hold"
    spec = HOLD_STUDY.format(name=store.study, hold=hold, n_trials=4)
    args = ("storage.heartbeat_interval=1", "storage.grace_period=2")
    workers = start_workers(tmp_path, store, spec, min(store.workers, 2), *args)
    pid, victims_trial = held_trial(store, hold)
    [victim] = [w for w in workers if w.pid == pid]
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    [survivor] = [w for w in workers if w is not victim] or start_workers(
        tmp_path, store, spec, 1, *args
    )
    _, stderr = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, stderr

    study = store.load()
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 4
    failed = study.trials[victims_trial.number]
    assert failed.state == TrialState.FAIL
    retried = [t for t in finished if t.system_attrs.get("failed_trial") == failed.number]
    assert retried, "the dead worker's trial was run again"
    assert retried[0].params == failed.params, "with the same parameters"
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(
        victims_trial.user_attrs["mlflow_run_id"]
    )
    assert run.info.status == "KILLED"
