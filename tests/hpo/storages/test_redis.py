"""Optuna's journal on a real Redis server: the lock's renewal and messages.

Workers on Redis (budget, grid, dead workers) are in the contract suite, test_contract.py.

Set HPO_TEST_REDIS_URL (default redis://127.0.0.1:6379/15); CI does, with
HPO_REQUIRE_REDIS=1 so that a missing server fails instead of skipping.
Studies get unique names and are deleted afterwards; nothing else is touched.
"""

from __future__ import annotations

import pytest
import redis

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages import display_url, open_storage
from hpo.storages.redis import redis_lock


def test_unreachable_redis_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError, match=r"cannot open storage .*check storage\.url") as err:
        open_storage(StorageConfig(url="redis://:canarypw@127.0.0.1:1/0"))
    assert "canarypw" not in str(err.value)
    assert "127.0.0.1:1" in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://worker:s3cret@cache:6380/2", "rediss://worker:***@cache:6380/2"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redis_urls_are_shown_without_the_password(url: str, shown: str) -> None:
    assert mask(url) == shown
    assert display_url(StorageConfig(url=url)) == shown


@pytest.mark.redis
def test_redis_lock_is_renewed_while_held_past_its_ttl(redis_url: str, redis_study: str) -> None:
    """Seen renewed (its TTL reset upwards) and still held, not merely not yet expired."""
    client = redis.Redis.from_url(redis_url)
    key = f"hpo:lock:{redis_study}"
    with redis_lock(client, key, ttl=3.0):
        first = client.pttl(key)
        renewed = client.pttl(key)
        while renewed <= first:  # the renewal thread resets the TTL every second
            first, renewed = renewed, client.pttl(key)
        assert not client.lock(key, timeout=1).acquire(blocking=False)
    assert client.lock(key, timeout=1).acquire(blocking=False), "released at the end"
    client.delete(key)
