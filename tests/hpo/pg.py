"""A real PostgreSQL server for tests: fresh databases (and roles) created and dropped per use.

Set HPO_TEST_PG_URL (a server where databases may be created); CI does, with
HPO_REQUIRE_POSTGRES=1 so that a missing server fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

PG_URL = os.environ.get("HPO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def admin() -> psycopg.Connection:
    """An autocommit connection to the test server, or a skip (a failure in CI) without one."""
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        if os.environ.get("HPO_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL server at HPO_TEST_PG_URL ({err})")


@contextlib.contextmanager
def new_database(prefix: str = "hpo", owner: str | None = None) -> Iterator[str]:
    """The URL of a new, empty database (owned by ``owner``); dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin() as connection:
        connection.execute(f"CREATE DATABASE {name}" + (f" OWNER {owner}" if owner else ""))
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin() as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sqlalchemy_url(url: str) -> str:
    """The same URL for SQLAlchemy with psycopg 3 (``postgresql://`` means psycopg2)."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
