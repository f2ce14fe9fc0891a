"""The storage backends the contract suite runs over, like Optuna's STORAGE_MODES.

PostgreSQL and Redis cases skip without their server (HPO_TEST_PG_URL,
HPO_TEST_REDIS_URL) unless CI requires them (HPO_REQUIRE_POSTGRES/REDIS=1).
Every case gets its own store: a temporary file, a new database, Redis
studies under unique names that are deleted afterwards, or a new database
behind its own gRPC proxy (``python -m hpo.storages.proxy``, a real process).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from hpo.config import StorageConfig
from hpo.storages import open_storage
from tests.hpo.pg import new_database
from tests.hpo.storages.helpers import Store, proxy

REDIS_URL = os.environ.get("HPO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
KINDS = [
    pytest.param("journal", id="journal"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("grpc", id="grpc", marks=pytest.mark.postgres),
]


def redis_server() -> str:
    """The test Redis URL, or a skip (a failure in CI) without a server."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as err:
        if os.environ.get("HPO_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis server at HPO_TEST_REDIS_URL ({err})")
    return REDIS_URL


@pytest.fixture
def redis_url() -> str:
    return redis_server()


def _drop_redis_study(url: str, name: str) -> None:
    storage = open_storage(StorageConfig(url=url))
    if name in {s.study_name for s in storage.get_all_studies()}:
        optuna.delete_study(study_name=name, storage=storage)


@pytest.fixture
def study_name() -> str:
    return f"hpo_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, study_name: str) -> Iterator[Store]:
    """One store of each kind in turn."""
    kind = request.param
    if kind == "journal":
        yield Store(kind, f"journal:{tmp_path / 'optuna.journal'}", study_name)
    elif kind == "sqlite":
        yield Store(kind, f"sqlite:///{tmp_path / 'optuna.db'}", study_name)
    elif kind == "postgres":
        with new_database() as url:
            yield Store(kind, url, study_name)
    elif kind == "grpc":
        with new_database() as database, proxy(database) as url:
            yield Store(kind, url, study_name, behind=database)
    else:
        url = redis_server()
        yield Store(kind, url, study_name)
        _drop_redis_study(url, study_name)


@pytest.fixture
def redis_study(redis_url: str, study_name: str) -> Iterator[str]:
    """A unique study name, deleted from the Redis journal afterwards."""
    yield study_name
    _drop_redis_study(redis_url, study_name)
