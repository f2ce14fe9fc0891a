"""Heartbeats in Redis, on the server's clock: what counts as stale, and what is kept."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from hpo.config import StorageConfig
from hpo.storages import open_storage
from hpo.storages.redis_journal import RedisJournalStorage

pytestmark = pytest.mark.redis


def _open(url: str) -> RedisJournalStorage:
    storage = open_storage(StorageConfig(url=url, heartbeat_interval=10, grace_period=30))
    assert isinstance(storage, RedisJournalStorage) and is_heartbeat_enabled(storage)
    return storage


def test_a_trial_without_a_heartbeat_yet_is_not_stale(redis_url: str, redis_study: str) -> None:
    storage = _open(redis_url)
    study = optuna.create_study(study_name=redis_study, storage=storage)
    silent, beating = study.ask(), study.ask()
    storage.record_heartbeat(beating._trial_id)
    now = storage._now()
    storage._now = lambda: now + 3600  # type: ignore[method-assign]  # an hour later
    assert storage._get_stale_trial_ids(study._study_id) == [beating._trial_id]
    assert silent.number == 0


def test_a_finished_trials_heartbeat_is_dropped(redis_url: str, redis_study: str) -> None:
    storage = _open(redis_url)
    study = optuna.create_study(study_name=redis_study, storage=storage)
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    assert storage._client.hexists(storage._key, str(trial._trial_id))
    study.tell(trial, 1.0)
    assert not storage._client.hexists(storage._key, str(trial._trial_id))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
