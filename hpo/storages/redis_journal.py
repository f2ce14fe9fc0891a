"""Optuna's journal storage on Redis, with the heartbeats Optuna gives only to RDBStorage.

Without heartbeats a worker killed on one machine leaves its trial RUNNING for
good: no worker elsewhere can tell it is dead, and the exact budget waits on
it. Here each running trial's worker writes the Redis server's clock into one
hash (field = trial id) every ``heartbeat_interval`` seconds; a trial whose
entry is older than ``grace_period`` is stale. Optuna's ``fail_stale_trials``
and hpo's watchdog then treat it exactly as on PostgreSQL: FAIL, retried
with the same parameters, its MLflow run KILLED. The server's clock, not the
workers', so skewed machine clocks do not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalRedisBackend
from optuna.trial import FrozenTrial, TrialState


class RedisJournalStorage(JournalStorage, BaseHeartbeat):
    """``JournalStorage(JournalRedisBackend(url))`` plus heartbeats kept in Redis."""

    def __init__(
        self,
        backend: JournalRedisBackend,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback
        self._client: Any = backend._redis
        self._key = f"{backend._prefix}:hpo:heartbeat"

    def record_heartbeat(self, trial_id: int) -> None:
        self._client.hset(self._key, str(trial_id), self._now())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        assert self.heartbeat_interval is not None
        grace = self.grace_period or 2 * self.heartbeat_interval
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return []
        ids = [t._trial_id for t in running]
        beats = self._client.hmget(self._key, [str(i) for i in ids])
        now = self._now()
        return [i for i, beat in zip(ids, beats, strict=True) if beat and now - float(beat) > grace]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Optuna's, and a finished trial's heartbeat entry is dropped (the hash stays small)."""
        changed = super().set_trial_state_values(trial_id, state, values)
        if state.is_finished():
            self._client.hdel(self._key, str(trial_id))
        return changed

    def _now(self) -> float:
        seconds, micros = self._client.time()
        return float(seconds) + micros / 1e6
