"""What SQLAlchemy-backed storages (Optuna's RDBStorage) share: opening, errors, URLs.

SQLite and PostgreSQL subclass this; any other database RDBStorage knows
(``mysql...``) is served by this class itself, with no locks of its own.
"""

from __future__ import annotations

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
        url = self.engine_url()
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


def shown(url: str) -> str:
    """``url`` for messages: without its password, even one make_url cannot parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return mask(url)
