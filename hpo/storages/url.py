"""The storage URL from the config: ``storage.url``, or PostgreSQL built from its parts.

The built URL never holds a password: libpq (psycopg) reads PGPASSWORD or
~/.pgpass by itself, so none reaches a command line or a saved config.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from hpo.config import StorageConfig
from hpo.errors import UserError

PARTS = ("host", "port", "database", "user")  # storage.* keys that make a PostgreSQL URL
NO_URL = (
    "storage.url is empty: export HPO_STORAGE_URL=postgresql://USER@HOST:5432/DB, "
    "or give storage.host=HOST storage.database=DB (and storage.port, storage.user); "
    "the password goes in PGPASSWORD or ~/.pgpass"
)


def storage_url(cfg: StorageConfig) -> str:
    """``cfg.url``; with it empty, the PostgreSQL URL built from host, port, database, user.

    Neither a URL nor a part: a UserError naming both ways.
    """
    url = (cfg.url or "").strip()
    if url:
        return url
    parts = given_parts(cfg)
    if not parts:
        raise UserError(NO_URL)
    port = parts.get("port")
    return URL.create(
        "postgresql+psycopg",
        username=parts.get("user"),
        host=parts.get("host"),
        port=int(port) if port is not None else None,
        database=parts.get("database"),
    ).render_as_string(hide_password=False)


def given_parts(cfg: StorageConfig) -> dict[str, Any]:
    """The PostgreSQL parts given (not None, not empty) in ``cfg``."""
    given = {name: getattr(cfg, name, None) for name in PARTS}
    return {name: value for name, value in given.items() if value not in (None, "")}
