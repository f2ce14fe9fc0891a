"""A dead worker's trial run again: retry(), StaleTrials and max_retry on real storages."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpo.config import StorageConfig
from hpo.names import CV_ATTR, FAIL_REASON_ATTR, RUN_ATTR, WORKER_ATTR
from hpo.storages import open_storage
from hpo.storages.heartbeat import MAX_RETRY, StaleTrials, max_retry, retry
from hpo.storages.rdb import RDB


def _study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(StorageConfig(url=f"journal:{tmp_path / 'optuna.journal'}"))
    return optuna.create_study(study_name="s", storage=storage)


def _failed(study: optuna.Study) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.suggest_int("n", 1, 9)
    for key in (WORKER_ATTR, RUN_ATTR, FAIL_REASON_ATTR, CV_ATTR):
        trial.set_user_attr(key, "the dead run's")
    trial.set_user_attr("note", "kept")
    study.tell(trial, state=TrialState.FAIL)
    return study.trials[trial.number]


def test_retry_enqueues_one_waiting_copy_without_the_dead_runs_attrs(tmp_path: Path) -> None:
    study = _study(tmp_path)
    dead = _failed(study)
    assert retry(study, dead, limit=2)
    copies = study.get_trials(states=(TrialState.WAITING,))
    assert len(copies) == 1
    (copy,) = copies
    assert copy.params == dead.params and copy.distributions == dead.distributions
    assert copy.system_attrs["failed_trial"] == dead.number
    assert copy.system_attrs["retry_history"] == [dead.number]
    assert copy.user_attrs == {"note": "kept"}
    assert "retry_history" not in study.trials[dead.number].system_attrs
    assert "retry_history" not in dead.system_attrs, "the trial given is left as it was"


def test_retry_stops_after_the_limit_counting_the_whole_history(tmp_path: Path) -> None:
    study = _study(tmp_path)
    dead = _failed(study)
    assert retry(study, dead, limit=1)
    again = study.ask()  # the WAITING copy, run and dead again
    assert again.params == dead.params
    study.tell(again, state=TrialState.FAIL)
    assert not retry(study, study.trials[again.number], limit=1)
    assert not retry(study, dead, limit=0)
    assert study.get_trials(states=(TrialState.WAITING,)) == []


def test_stale_trials_retries_and_keeps_each_failed_trial_until_drained(tmp_path: Path) -> None:
    study = _study(tmp_path)
    first, second = _failed(study), _failed(study)
    stale = StaleTrials(max_retry=1)
    stale(study, first)
    stale(study, second)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["failed_trial"] for t in waiting] == [first.number, second.number]
    assert [t.number for t in stale.drain()] == [first.number, second.number]
    assert stale.drain() == []


def test_max_retry_is_the_storage_configs_or_the_default(tmp_path: Path) -> None:
    assert max_retry(_study(tmp_path)) == MAX_RETRY  # a journal has no stale-trial callback
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = StorageConfig(url=url, heartbeat_interval=10, grace_period=30, max_retry=5)
    study = optuna.create_study(study_name="s", storage=RDB(url, cfg).open())
    assert max_retry(study) == 5
    assert max_retry(optuna.create_study()) == MAX_RETRY  # in memory
