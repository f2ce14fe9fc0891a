"""A study folder moved or copied elsewhere: MLflow's records pointed at its own artifacts.

A local store is ``mlflow.db`` with hpo's artifacts in ``mlartifacts/`` beside it
(``artifacts_beside``). MLflow records every artifact location as an absolute path
when it creates the row, and never rewrites it: moved, the folder's runs show no
plots and ``models:/`` and ``runs:/`` URIs load nothing. Neither of MLflow's other
ways helps a store that hpo writes without a server (MLflow 3.17):

- relative locations: ``create_experiment`` makes them absolute
  (``SqlAlchemyStore.create_experiment`` -> ``utils.uri.resolve_uri_if_local``), and
  one written into the table is read against the working directory
  (``LocalArtifactRepository`` -> ``local_file_uri_to_path``), so a model loads only
  from the study's folder;
- ``mlflow-artifacts:/`` locations, proxied by ``mlflow server --serve-artifacts``:
  ``MlflowArtifactsRepository`` refuses any tracking URI but http(s), so a process
  logging straight to SQLite cannot write or read them.

MLflow has no call that changes a recorded location either, so ``relocate`` rewrites
them when hpo opens the store (the tracker, ``python -m hpo.ui``, ``python -m
hpo.check``): the old root's prefix, in these columns only
(``LOCATIONS``): ``experiments.artifact_location``, ``runs.artifact_uri`` (``runs:/``),
``logged_models.artifact_location`` (``models:/m-...``) and the model registry's
``model_versions.storage_location`` and ``source`` (``models:/NAME/VERSION``). The paths
stay absolute, as MLflow writes them: any MLflow client, from any working directory,
and ``mlflow server`` read the folder as if it had never moved. The MLmodel files keep
the ``artifact_path`` they were logged with; MLflow loads a model without it.

A recorded root is relocated only when it is a local ``.../mlartifacts`` that is not the
one beside this store, and either it is gone (moved) or a run's or model's artifact
folder recorded under it, named by its unique id, is also beside this store (copied).
A root named by tracking.artifact_location (``keep``) is never touched. Every UPDATE
matches the old prefix, so two processes relocating at once change each row once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.exc import OperationalError

from hpo.storages import backend_name, storage_file

log = logging.getLogger("hpo.tracking")

ARTIFACTS = "mlartifacts"  # hpo's artifact folder beside a local store
LOCATIONS = (  # (table, column) of every artifact location MLflow records under a root
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)
EVIDENCE = (("runs", "artifact_uri"), ("logged_models", "artifact_location"))
BUSY_TIMEOUT = 5.0  # seconds to wait for a store another process is writing


def artifacts_beside(uri: str) -> Path | None:
    """``mlartifacts`` beside a local store's file (absolute); None for a server."""
    db = storage_file(uri)
    if db is None:
        return None
    return (db.parent if db.parent != Path("") else Path.cwd()).resolve() / ARTIFACTS


def relocate(uri: str, keep: str | None = None) -> list[str]:
    """Point the store's locations under a moved or copied ``mlartifacts`` at the one
    beside it (see the module's docstring); the old roots relocated. ``keep``: the
    configured tracking.artifact_location, left as it is.

    A store that cannot be updated (read-only, locked) is left as it was, said once."""
    here = artifacts_beside(uri)
    db = storage_file(uri)
    if here is None or db is None or not db.is_file() or backend_name(uri) != "SQLite":
        return []
    kept = {str(here)} | ({os.path.abspath(keep)} if keep else set())
    engine = create_engine(uri, connect_args={"timeout": BUSY_TIMEOUT})
    try:
        with engine.begin() as conn:
            tables = set(inspect(conn).get_table_names())
            if "experiments" not in tables:
                return []
            found = conn.execute(text("SELECT artifact_location FROM experiments")).scalars()
            roots = {root for root in map(_root, found) if root and root not in kept}
            moved = sorted(root for root in roots if _moved(conn, tables, root, here))
            for root in moved:
                rows = _rewrite(conn, tables, root, str(here))
                log.info("the study folder moved: %d MLflow locations %s -> %s", rows, root, here)
    except OperationalError as err:
        log.warning(
            "MLflow's artifact locations in %s still point where the folder was (%s): "
            "its plots and models show once hpo can update them",
            db,
            str(err.orig).splitlines()[0],
        )
        return []
    finally:
        engine.dispose()
    return moved


def _root(location: str | None) -> str | None:
    """The ``.../mlartifacts`` folder an experiment's local location lies in, else None."""
    if not location or urlparse(location).scheme or not os.path.isabs(location):
        return None
    parent = os.path.dirname(location.rstrip("/"))
    return parent if os.path.basename(parent) == ARTIFACTS else None


def _moved(conn: Connection, tables: set[str], root: str, here: Path) -> bool:
    """``root`` is gone, or a folder recorded under it is beside this store too."""
    if not os.path.exists(root):
        return True
    prefix = root + "/"
    for table, column in EVIDENCE:
        if table not in tables:
            continue
        query = text(f"SELECT {column} FROM {table} WHERE substr({column}, 1, :n) = :prefix")
        for location in conn.execute(query, {"n": len(prefix), "prefix": prefix}).scalars():
            if (here / location[len(prefix) :]).is_dir():
                return True
    return False


def _rewrite(conn: Connection, tables: set[str], old: str, new: str) -> int:
    """Every location under ``old``/ made the same under ``new``/; the rows changed."""
    rows = 0
    params = {"n": len(old) + 1, "old": old + "/", "new": new + "/"}
    for table, column in LOCATIONS:
        if table in tables:
            update = text(
                f"UPDATE {table} SET {column} = :new || substr({column}, :n + 1) "
                f"WHERE substr({column}, 1, :n) = :old"
            )
            rows += conn.execute(update, params).rowcount
    return rows
