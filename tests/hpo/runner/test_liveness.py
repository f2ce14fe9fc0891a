"""Liveness: a dead worker's trial is failed once, with its reason, and retried once.

Two workers reaping the same dead trial is the race of a database restart:
both saw it RUNNING before either told it FAIL. Each test gives both workers
the same view (their lists of dead trials taken before either reaps), then
lets them reap in turn, or at once behind a barrier; every interleaving must
end the same way. No test waits for time to pass: a heartbeat is aged, a
process is dead, or the unowned limit is lowered.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import hpo.runner.liveness
from hpo.names import FAIL_REASON_ATTR, RUN_ATTR, WORKER_ATTR
from hpo.runner.liveness import Dead, dead_trials, reap, recover
from hpo.runner.telling import tell_once
from hpo.storages import backend_for, open_storage
from tests.hpo.pg import new_database
from tests.hpo.storages.conftest import redis_server
from tests.hpo.storages.helpers import Store, age_heartbeat

HEARTBEATS = {"heartbeat_interval": 10, "grace_period": 30}
KINDS = [
    pytest.param("journal", id="journal"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]
PG, REDIS = pytest.mark.postgres, pytest.mark.redis
DEATHS = [  # (store, how the worker died): a journal file keeps no heartbeats
    pytest.param("journal", "process gone", id="journal-process-gone"),
    pytest.param("journal", "never taken", id="journal-never-taken"),
    pytest.param("postgres", "process gone", id="postgres-process-gone", marks=PG),
    pytest.param("postgres", "no heartbeat", id="postgres-no-heartbeat", marks=PG),
    pytest.param("postgres", "never taken", id="postgres-never-taken", marks=PG),
    pytest.param("redis", "no heartbeat", id="redis-no-heartbeat", marks=REDIS),
]
REASONS = {
    "process gone": "stopped (the process is gone)",
    "no heartbeat": "its worker another-machine:4242 stopped (no heartbeat for over 30 s)",
    "never taken": "no worker took it within",
}


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each kind, and a study name no other test uses."""
    name = f"hpo_test_{uuid.uuid4().hex[:10]}"
    if request.param == "journal":
        yield Store("journal", f"journal:{tmp_path / 'optuna.journal'}", name)
    elif request.param == "postgres":
        with new_database() as url:
            yield Store("postgres", url, name)
    else:
        redis = Store("redis", redis_server(), name)
        yield redis
        storage = _open(redis)
        if name in {s.study_name for s in storage.get_all_studies()}:
            optuna.delete_study(study_name=name, storage=storage)


def _open(store: Store) -> optuna.storages.BaseStorage:
    """A new storage on ``store``, with heartbeats where it keeps them (as a worker opens it)."""
    heartbeats = HEARTBEATS if backend_for(store.url).heartbeats else {}
    return open_storage(store.cfg(max_retry=2, **heartbeats))


def _dead_pid() -> int:
    """The pid of a process of this host that has exited (and been waited for)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def _dead_trial(store: Store, death: str, monkeypatch: pytest.MonkeyPatch) -> optuna.Study:
    """A study whose one trial (x suggested, an MLflow run id set) lost its worker by
    ``death``."""
    storage = _open(store)
    study = optuna.create_study(study_name=store.study, storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    if death == "process gone":
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{_dead_pid()}")
    elif death == "no heartbeat":
        trial.set_user_attr(WORKER_ATTR, "another-machine:4242")
        storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        age_heartbeat(storage, trial._trial_id, 60)  # silent for twice the grace period
    else:
        monkeypatch.setattr(hpo.runner.liveness, "UNOWNED_SECONDS", -1.0)
    trial.set_user_attr(RUN_ATTR, "run-of-the-dead-trial")
    return study


def _worker(store: Store) -> optuna.Study:
    """The study as another worker process opens it: its own storage and connections."""
    return optuna.load_study(study_name=store.study, storage=_open(store))


def _assert_failed_once_and_retried_once(store: Store, death: str) -> None:
    dead, *rest = _worker(store).get_trials()
    assert dead.state == TrialState.FAIL
    assert REASONS[death] in dead.user_attrs[FAIL_REASON_ATTR]
    assert [t.state for t in rest] == [TrialState.WAITING], "one retry, not one per worker"
    retry = rest[0]
    assert retry.params == dead.params, "the same parameters run again"
    assert retry.system_attrs["failed_trial"] == dead.number
    assert not {WORKER_ATTR, RUN_ATTR, FAIL_REASON_ATTR} & set(retry.user_attrs), (
        "the retry carries nothing of the dead run"
    )


@pytest.mark.parametrize(("store", "death"), DEATHS, indirect=["store"])
def test_two_workers_reaping_the_same_trial_in_turn_fail_and_retry_it_once(
    store: Store, death: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second reaps a trial the first has already failed: no error, nothing done twice."""
    _dead_trial(store, death, monkeypatch)
    first, second = _worker(store), _worker(store)
    seen = [dead_trials(first), dead_trials(second)]  # both before either tells
    assert [[d.trial.number for d in found] for found in seen] == [[0], [0]]

    reap(first, seen[0], tracker=None)
    reap(second, seen[1], tracker=None)

    _assert_failed_once_and_retried_once(store, death)


@pytest.mark.parametrize(("store", "death"), DEATHS, indirect=["store"])
def test_two_workers_reaping_the_same_trial_at_once_fail_and_retry_it_once(
    store: Store, death: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both reap from the same view at the same moment, whoever's writes land first."""
    _dead_trial(store, death, monkeypatch)
    workers = [_worker(store), _worker(store)]
    seen = [dead_trials(w) for w in workers]
    barrier = threading.Barrier(len(workers), timeout=60)  # a guard against a hang, not a wait
    errors: list[BaseException] = []

    def reap_at_once(study: optuna.Study, found: list[Dead]) -> None:
        try:
            barrier.wait()
            reap(study, found, tracker=None)
        except BaseException as err:
            errors.append(err)

    pairs = zip(workers, seen, strict=True)
    threads = [threading.Thread(target=reap_at_once, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    _assert_failed_once_and_retried_once(store, death)


def test_a_dead_trial_is_failed_with_why_and_its_run_closed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recover: the fail reason on the trial in Optuna is the reason on its KILLED run, which
    also gets the parameters the trial was trying."""
    _dead_trial(store, "process gone", monkeypatch)
    killed: list[tuple[str, str, dict[str, object]]] = []

    class Runs:  # the one Tracker method recover calls
        def kill_run(self, run_id: str, reason: str, params: dict[str, object]) -> None:
            killed.append((run_id, reason, dict(params)))

    recover(_worker(store), Runs())  # type: ignore[arg-type]

    dead = _worker(store).trials[0]
    assert killed == [("run-of-the-dead-trial", dead.user_attrs[FAIL_REASON_ATTR], dead.params)]
    assert set(dead.params) == {"x"}
    assert dead.user_attrs[FAIL_REASON_ATTR].startswith(f"its worker {socket.gethostname()}:")


def test_a_trial_whose_worker_runs_is_left_alone(store: Store) -> None:
    storage = _open(store)
    study = optuna.create_study(study_name=store.study, storage=storage)
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{_dead_pid()}")
    study.tell(trial, 0.5)  # it ended before anyone looked
    mine = study.ask()
    mine.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")

    recover(_worker(store), tracker=None)

    assert [t.state for t in _worker(store).trials] == [TrialState.COMPLETE, TrialState.RUNNING]


def test_a_trial_its_own_worker_ends_after_the_reaper_looked_keeps_its_outcome(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that was only slow tells its trial first: the reaper leaves it and its run."""
    owner = _dead_trial(store, "never taken", monkeypatch)
    reaper = _worker(store)
    seen = dead_trials(reaper)
    assert tell_once(owner, owner.trials[0], None, [0.5])
    killed: list[str] = []

    class Runs:
        def kill_run(self, run_id: str, reason: str, params: dict[str, object]) -> None:
            killed.append(run_id)

    reap(reaper, seen, Runs())  # type: ignore[arg-type]

    [trial] = _worker(store).trials
    assert (trial.state, trial.value, killed) == (TrialState.COMPLETE, 0.5, [])
    assert FAIL_REASON_ATTR not in trial.user_attrs
    assert not tell_once(owner, trial, TrialState.FAIL), "told once: a second tell is refused"
