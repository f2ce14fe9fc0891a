"""``python -m hpo.storages.proxy [storage=postgres] [host=..] [port=..] [threads=64] [pool=4]``.

Serves Optuna's gRPC storage proxy, with hpo's study lock and heartbeats
(hpo/storages/proxy/server.py), in front of the PostgreSQL database that
``storage=postgres`` names for ``python -m hpo``: the same HPO_STORAGE_URL or
storage.host/port/database/user, the password from PGPASSWORD or ~/.pgpass
(a password typed in an override is moved out of Hydra's sight, as there).
It prints one line once it listens (``port=0``: a free port, named there) and
serves until SIGTERM or Ctrl-C, which let the calls in flight finish and exit 0.
A storage it cannot serve, an unreachable database or a taken port is one
``error:`` line and exit status 2.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import hydra
import optuna
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hpo.cli import composition_error, fail, missing_option
from hpo.config import CONF_DIR, StorageConfig
from hpo.errors import UserError
from hpo.secrets import hide_secrets
from hpo.storages import backend_for_config, display_url
from hpo.storages.base import log
from hpo.storages.grpc import PORT
from hpo.storages.postgres import PostgreSQL

STOP_GRACE = 5.0  # seconds the calls in flight get to finish on SIGTERM


@dataclass
class ProxyConfig:
    storage: StorageConfig = field(default_factory=StorageConfig)  # the database it serves
    host: str = "127.0.0.1"  # where it listens: 0.0.0.0 in a container
    port: int = PORT  # 0: any free port (printed)
    threads: int = 64  # storage calls at once, and lock requests waiting (half of them)
    pool: int = 4  # database connections it keeps, and the most it ever opens


def serve(cfg: ProxyConfig, stop: threading.Event) -> None:
    """Open the storage, listen, say where, and serve until ``stop`` is set."""
    from hpo.storages.proxy.server import make_server

    backend = backend_for_config(cfg.storage)
    if not isinstance(backend, PostgreSQL):
        raise UserError(
            f"the gRPC proxy serves PostgreSQL, not {backend.name} ({display_url(cfg.storage)}): "
            "give it storage=postgres (HPO_STORAGE_URL or storage.host=...)"
        )
    if cfg.threads < 2 or cfg.pool < 1:
        raise UserError(
            f"threads={cfg.threads} pool={cfg.pool}: the proxy needs at least 2 threads and "
            "1 connection (the defaults are 64 and 4)"
        )
    # a steady pool: a long-lived server gains nothing from opening and closing connections
    backend.pool_size, backend.max_overflow = cfg.pool, 0
    rdb = backend.open()
    server, port = make_server(rdb, cfg.host, cfg.port, cfg.threads)
    print(
        f"hpo proxy: serving {display_url(cfg.storage)} on grpc://{cfg.host}:{port} "
        f"({cfg.threads} threads, {cfg.pool} database connections); "
        f"workers: storage=grpc storage.host=HOST storage.port={port}",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        log.info("stopping: %.0f s for the calls in flight", STOP_GRACE)
        server.stop(STOP_GRACE).wait()
        rdb.engine.dispose()


def _register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="hpo_proxy_schema", node=ProxyConfig)
    primary = OmegaConf.create(
        {
            "defaults": [
                "hpo_proxy_schema",
                {"storage": "postgres"},
                {"override hydra/job_logging": "none"},  # no log file; logging set up below
                {"override hydra/hydra_logging": "none"},
                "_self_",
            ],
            "hydra": {
                "output_subdir": None,  # serving saves no config
                "run": {"dir": "."},
                "job": {"name": "hpo_proxy", "chdir": False},
                "help": {
                    "app_name": "hpo.storages.proxy",
                    "template": (
                        "hpo.storages.proxy: Optuna's gRPC storage proxy in front of PostgreSQL, "
                        "with hpo's study lock and heartbeats, for workers run with storage=grpc."
                        "\n\nUsage: python -m hpo.storages.proxy [storage=postgres] "
                        "[storage.host=... | HPO_STORAGE_URL] [host=127.0.0.1] [port=13000] "
                        "[threads=64] [pool=4]\n\n== Config ==\n$CONFIG\n"
                    ),
                },
            },
        }
    )
    cs.store(name="hpo_proxy", node=primary)


_outcome: list[BaseException] = []
_stop = threading.Event()


def _run(cfg: DictConfig) -> None:
    try:
        config = OmegaConf.to_object(cfg)
        assert isinstance(config, ProxyConfig)
        serve(config, _stop)
    except (Exception, KeyboardInterrupt) as err:  # Hydra would print the overrides
        _outcome.append(err)


def _interrupt(signum: int, frame: Any) -> None:
    _stop.set()


def main() -> None:
    """Entry point of ``python -m hpo.storages.proxy``."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s"
    )
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    sys.argv[1:] = hide_secrets(sys.argv[1:])  # as in python -m hpo: Hydra never sees a password
    _register()
    try:
        hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="hpo_proxy")(_run)()
    except MissingConfigException as err:
        fail(missing_option(err))
    except (HydraException, OmegaConfBaseException) as err:
        fail(composition_error(err))
    outcome = _outcome[0] if _outcome else None
    if isinstance(outcome, UserError):
        fail(str(outcome))
    if outcome is not None:
        raise outcome
    sys.exit(0)
