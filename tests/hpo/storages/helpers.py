"""Helpers shared by the storage tests: a child process that takes the study lock, and
heartbeats aged on purpose so that staleness never depends on waiting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb.models import TrialHeartbeatModel

from hpo.config import StorageConfig
from hpo.storages import open_storage, study_lock
from hpo.storages.redis_journal import RedisJournalStorage


def lock_and_count(url: str, study: str, log: str, counter: str, rounds: int) -> None:
    """``rounds`` times: under the study lock, log enter/exit and bump a file counter.

    The counter is read and rewritten non-atomically, and the log says who was
    inside: without exclusion, entries interleave and updates get lost.
    """
    storage = open_storage(StorageConfig(url=url))
    for _ in range(rounds):
        with study_lock(storage, study):
            with open(log, "a") as out:
                out.write("enter\n")
            path = Path(counter)
            path.write_text(str(int(path.read_text() or "0") + 1))
            with open(log, "a") as out:
                out.write("exit\n")


def age_heartbeat(storage: BaseStorage, trial_id: int, seconds: float) -> None:
    """Move trial ``trial_id``'s last heartbeat ``seconds`` into the past."""
    if isinstance(storage, RedisJournalStorage):
        storage._client.hset(storage._key, str(trial_id), storage._now() - seconds)
        return
    assert isinstance(storage, RDBStorage)
    session = storage.scoped_session()
    try:
        beat = session.query(TrialHeartbeatModel).filter_by(trial_id=trial_id).one()
        beat.heartbeat = beat.heartbeat - dt.timedelta(seconds=seconds)
        session.commit()
    finally:
        session.close()
