"""``python -m hpo study=NAME [overrides]``: the command line (hpo/__main__.py calls it).

Hydra composes the config; this module turns every user mistake into one
line and exit status 2; a database outage longer than storage.outage_limit,
a full disk or a study whose trials keep failing into one line and status 1
(after the summary of what finished); an interruption into 130/143; and
anything else into a traceback with status 1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from hpo.cli import composition_error, fail, first_line, missing_option
from hpo.config import CONF_DIR, register_configs, typed
from hpo.errors import StudyStopped, UserError, disk_full
from hpo.secrets import hide_secrets
from hpo.storages import DatabaseOutage

if TYPE_CHECKING:
    from hpo.report import Summary

log = logging.getLogger("hpo")

register_configs()


_failures: list[BaseException] = []


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _run(cfg: DictConfig) -> None:
    """One job. Errors are kept for main(): Hydra would print the overrides, secrets included."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    summary: Summary | None
    try:
        summary = _job(cfg)
    except (Exception, KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, Exception) and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a launcher job, maybe in another process: Hydra's sweeper hands it to main()
        _failures.append(err)
        return
    if summary is not None:
        print(summary.text(), flush=True)


def _job(composed: DictConfig) -> Summary | None:
    """The study, nightly or as N workers; imports only what that job needs (worker start-up).

    The composed config becomes the typed one here, once: nothing below reads a DictConfig.
    """
    cfg = typed(composed)
    if cfg.evaluation.nested.outer or cfg.evaluation.nested.only:  # the study, then nested CV
        from hpo.evaluation.nested import with_nested

        return with_nested(cfg)
    if cfg.schedule.kind != "none":
        from hpo.schedule import run_scheduled

        return run_scheduled(cfg)
    if cfg.workers > 1:
        from hpo.workers import fan_out

        return fan_out(cfg)
    from hpo.runner import run

    return run(cfg)


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)


def main() -> None:
    """``python -m hpo`` and the ``hpo`` console script, but for a bare --help."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    signal.signal(signal.SIGTERM, _terminate)
    sys.argv[1:] = hide_secrets(sys.argv[1:])  # Hydra saves and logs overrides: no passwords
    try:
        _run()
        if _failures:
            raise _failures[0]
    except UserError as err:
        fail(str(err))
    except StudyStopped as err:
        if err.summary is not None:
            print(err.summary.text(), flush=True)
        fail(str(err), status=1)
    except DatabaseOutage as err:
        fail(str(err), status=1)
    except MissingConfigException as err:
        fail(missing_option(err))
    except (HydraException, OmegaConfBaseException) as err:
        fail(composition_error(err))
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are kept; run the same command to resume", file=sys.stderr
        )
        sys.exit(130)
    except Exception as err:
        if not disk_full(err):
            raise
        fail(f"the disk is full ({first_line(err)}): free some space, then run again", status=1)
