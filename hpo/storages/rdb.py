"""What SQLAlchemy-backed storages (Optuna's RDBStorage) share: opening, errors, URLs.

SQLite and PostgreSQL subclass this; any other database RDBStorage knows
(``mysql...``) is served by this class itself, with no locks of its own.
"""

from __future__ import annotations

import time
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy import exc
from sqlalchemy.engine import make_url

from hpo.errors import UserError
from hpo.secrets import mask
from hpo.storages.base import Backend
from hpo.storages.heartbeat import StaleTrials


class RDB(Backend):
    name = "SQL database"
    schemes = ("mysql",)
    heartbeats = True

    @classmethod
    def owns(cls, storage: BaseStorage) -> bool:
        return isinstance(storage, RDBStorage)

    def open(self) -> RDBStorage:
        """Optuna's RDBStorage on the URL. A connection the server ended while it opened
        (a restart, pg_terminate_backend) is tried again, with backoff, for up to
        storage.outage_limit; a database that cannot be reached at all is refused at once."""
        url = self.engine_url()
        started, delay = time.monotonic(), 0.5
        while True:
            try:
                with self.init_lock("optuna-schema"):
                    return RDBStorage(
                        url,
                        engine_kwargs=self.engine_kwargs(url),
                        heartbeat_interval=self.cfg.heartbeat_interval,
                        grace_period=self.cfg.grace_period,
                        heartbeat_stale_trial_callback=StaleTrials(self.cfg.max_retry),
                    )
            except Exception as err:  # SQLAlchemy wraps every driver's connection error differently
                if ended_by_server(err) and time.monotonic() - started < self.cfg.outage_limit:
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                reason = mask(str(err).splitlines()[0]) if str(err) else type(err).__name__
                raise UserError(
                    f"cannot open storage {shown(url)} ({reason}): check {self.where()} "
                    "and that the database is running"
                ) from None

    def engine_url(self) -> str:
        """The URL given to SQLAlchemy."""
        return self.url

    def engine_kwargs(self, url: str) -> dict[str, Any]:
        return {}

    def where(self) -> str:
        """The config keys the URL came from, for messages."""
        from hpo.storages.url import PARTS

        return "storage.url" if (self.cfg.url or "").strip() else "storage." + "/".join(PARTS)

    @classmethod
    def lost_connection(cls, err: BaseException) -> bool:
        if isinstance(err, exc.DBAPIError) and err.connection_invalidated:
            return True
        return isinstance(err, exc.OperationalError | exc.InterfaceError | exc.TimeoutError)

    @classmethod
    def trouble(cls, err: BaseException) -> str | None:
        if isinstance(err, exc.TimeoutError):
            return "no database connection free in the pool"
        return None

    def shown(self) -> str:
        return shown(self.url)


ENDED_BY_SERVER = (
    "terminating connection",
    "server closed the connection unexpectedly",
    "connection already closed",
    "the database system is starting up",
    "the database system is shutting down",
)


def ended_by_server(err: BaseException) -> bool:
    """Whether the server was reached and then ended the connection (or is restarting):
    worth another try, unlike a refused connection, a wrong password or a missing database."""
    text = str(err).lower()
    return any(said in text for said in ENDED_BY_SERVER)


def shown(url: str) -> str:
    """``url`` for messages: without its password, even one make_url cannot parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return mask(url)
