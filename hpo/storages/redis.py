"""Optuna's journal on a Redis server (``redis://``, ``rediss://``): many workers, many machines.

The key prefix stays Optuna's default, so optuna-dashboard and plain Optuna
scripts given the same URL see the same studies. Heartbeats live in Redis
too (hpo/storages/redis_journal.py), so a dead worker's trial is failed and
retried from any machine, as on PostgreSQL. The study lock is a Redis lock
keyed by the study name; it is not tied to a connection, so it has a TTL.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalRedisBackend

from hpo.background import every
from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages.base import Backend, log
from hpo.storages.heartbeat import StaleTrials

REDIS_LOCK_TTL = 10.0  # seconds a dead holder keeps the Redis lock before others may take it


class Redis(Backend):
    name = "Redis"
    schemes = ("redis://", "rediss://")
    heartbeats = True

    @classmethod
    def owns(cls, storage: BaseStorage) -> bool:
        return isinstance(storage, JournalStorage) and isinstance(
            storage._backend, JournalRedisBackend
        )

    def open(self) -> JournalStorage:
        """Optuna's journal on Redis, checked with a PING so that a wrong URL fails up front."""
        try:
            import redis

            from hpo.storages.redis_journal import RedisJournalStorage
        except ImportError:
            raise UserError(
                "storage.url is a Redis URL but the redis package is missing: pip install redis"
            ) from None
        with warnings.catch_warnings():  # "experimental" since Optuna 3.1; said once per worker
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            backend = JournalRedisBackend(self.url)
        try:
            backend._redis.ping()
        except redis.RedisError as err:
            raise UserError(
                f"cannot open storage {mask(self.url)} ({mask(str(err))}): check storage.url "
                "and that Redis is running"
            ) from None
        cfg = self.cfg
        stale = StaleTrials(cfg.max_retry)
        return RedisJournalStorage(backend, cfg.heartbeat_interval, cfg.grace_period, stale)

    @classmethod
    def study_lock(cls, storage: BaseStorage, study_name: str) -> AbstractContextManager[None]:
        assert isinstance(storage, JournalStorage)
        backend = storage._backend
        assert isinstance(backend, JournalRedisBackend)
        return redis_lock(backend._redis, f"hpo:lock:{study_name}")

    @classmethod
    def lost_connection(cls, err: BaseException) -> bool:
        try:
            import redis
        except ImportError:
            return False
        return isinstance(err, redis.ConnectionError | redis.TimeoutError)


@contextlib.contextmanager
def redis_lock(client: Any, key: str, ttl: float = REDIS_LOCK_TTL) -> Iterator[None]:
    """redis-py's Lock on ``key``, renewed every ttl/3 while held.

    Unlike PostgreSQL's advisory lock, a Redis lock is not tied to a
    connection: a killed holder's lock lives until its TTL expires. A short TTL
    frees it soon after a death; the renewal keeps a slow holder (a first
    MLflow run creating its tables, a sampler with many trials) from losing it.
    """
    lock = client.lock(key, timeout=ttl, sleep=0.01, thread_local=False)
    lock.acquire(blocking=True)

    def renew() -> bool:
        try:
            lock.reacquire()
        except Exception as err:  # lost it (expired, or Redis unreachable): say so, stop
            log.warning("study lock %s could not be renewed: %s", key, mask(str(err)))
            return False
        return True

    try:
        with every(ttl / 3, renew, "hpo-redis-lock"):
            yield
    finally:
        with contextlib.suppress(Exception):  # expired already: nothing left to release
            lock.release()
