"""``python -m hpo.ui study=NAME [tracking=...] [storage=...] [--dashboard] [port=...]``.

One command to look at a study: it composes the same config as ``python -m
hpo`` (so the same overrides find the same stores), starts MLflow's UI light
on the study's local store (hpo/ui/servers.py says why light) and prints one
line with the URL of the study's runs table, best trial first, instead of
MLflow's GenAI overview. A tracking server is already running: its URL is
printed and nothing starts. ``--dashboard`` adds optuna-dashboard on the
study's Optuna storage.

Ctrl-C or SIGTERM stops every server it started and exits 0: stopping is how
a look at a study ends, not a failure. A missing store or experiment, or a
busy port, is one ``error:`` line and exit 2; a server that fails to start or
stops on its own is one line and exit 1.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hpo.cli import composition_error, fail, missing_option
from hpo.config import CONF_DIR, Config, register_configs, typed
from hpo.errors import UserError
from hpo.secrets import hide_secrets, mask
from hpo.tracking.store import is_server
from hpo.ui import servers
from hpo.ui.servers import Server, ServerFailed
from hpo.ui.target import (
    Experiment,
    OptunaStudy,
    artifacts_root,
    dashboard_url,
    find_experiment,
    find_study,
    runs_url,
)

DASHBOARD_FLAG = "--dashboard"  # a flag for people; Hydra sees dashboard=true


@dataclass
class UiConfig(Config):
    port: int = 5000  # the MLflow UI's port on 127.0.0.1
    dashboard: bool = False  # also optuna-dashboard on the study's storage (--dashboard)
    dashboard_port: int = 8080
    start_timeout: float = 120.0  # seconds a server may take to answer, then exit 1


UI_KEYS = ("port", "dashboard", "dashboard_port", "start_timeout")


def say(line: str) -> None:
    """Progress for the person at the terminal, on stderr: stdout holds the URL lines."""
    print(line, file=sys.stderr, flush=True)


def look(cfg: UiConfig, rerun: str) -> int:
    """Find the study's experiment (and Optuna study), start the servers, print the URLs,
    serve until Ctrl-C; the exit status."""
    name = cfg.study.name
    if not cfg.tracking.enabled and not cfg.dashboard:
        raise UserError(
            "tracking.enabled is false: there is no MLflow experiment to show "
            f"({DASHBOARD_FLAG} shows the Optuna study)"
        )
    experiment = find_experiment(cfg.tracking, name, rerun) if cfg.tracking.enabled else None
    study = _dashboard_study(cfg, rerun)
    if experiment is not None and not is_server(cfg.tracking.uri):
        servers.require_free(cfg.port, "port")
    if study is not None:
        servers.require_free(cfg.dashboard_port, "dashboard_port")
    started: list[Server] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="hpo-ui-") as folder:
        try:
            lines = [] if experiment is None else [_start_mlflow(cfg, experiment, started)]
            if study is not None:
                lines.append(_start_dashboard(cfg, study, Path(folder), started))
            for server in started:
                took = servers.wait_ready(server, cfg.start_timeout, say)
                say(f"{server.name} answered after {took:.1f} s")
            if started:  # the last line says how to stop what runs
                lines[-1] += "  (Ctrl-C stops it)" if len(started) == 1 else "  (Ctrl-C stops both)"
            print("\n".join(lines), flush=True)
            if not started:
                return 0
            ended = servers.watch(started)
            raise ServerFailed(servers.stopped_line(ended))
        except ServerFailed:
            failed = True  # its log is kept: the line names it
            raise
        except KeyboardInterrupt:
            if started:
                say("stopping " + " and ".join(server.name for server in started))
            return 0
        finally:
            servers.stop(started, keep_logs=failed)


def _dashboard_study(cfg: UiConfig, rerun: str) -> OptunaStudy | None:
    """The study for optuna-dashboard: None without --dashboard, or with it not installed
    (said in one line; the MLflow UI still starts)."""
    if not cfg.dashboard:
        return None
    study = find_study(cfg.storage, cfg.study.name, rerun)
    if servers.dashboard_executable() is None:
        say("optuna-dashboard is not installed: pip install optuna-dashboard")
        return None
    return study


def _start_mlflow(cfg: UiConfig, experiment: Experiment, started: list[Server]) -> str:
    """The MLflow UI's URL line; on a local store, the light server started first (and
    appended to ``started`` at once, so that whatever fails next stops it)."""
    base = cfg.tracking.uri
    if not is_server(base):
        command = servers.mlflow_command(cfg.port, artifacts_root(cfg.tracking))
        env = servers.mlflow_env(cfg.tracking.uri)
        server = servers.start("the MLflow UI", "mlflow", command, cfg.port, "/health", env)
        started.append(server)
        say(
            f"starting the MLflow UI on {mask(cfg.tracking.uri)} (one worker, no job runner); "
            f"waiting for {server.base}/health ..."
        )
        base = server.base
    return f"MLflow UI for study {cfg.study.name}: {runs_url(base, experiment)}"


def _start_dashboard(cfg: UiConfig, study: OptunaStudy, folder: Path, started: list[Server]) -> str:
    """optuna-dashboard started on the study's storage (appended to ``started``); its line."""
    executable = servers.dashboard_executable()
    assert executable is not None
    command = servers.dashboard_command(executable, study.storage, cfg.dashboard_port, folder)
    port = cfg.dashboard_port
    server = servers.start("optuna-dashboard", "dashboard", command, port, "/api/meta")
    started.append(server)
    say(f"starting optuna-dashboard on {study.shown}; waiting for {server.base} ...")
    return f"optuna-dashboard for study {cfg.study.name}: {dashboard_url(server.base, study)}"


def _register() -> None:
    """The main CLI's config (conf/config.yaml, every study) with the UI keys in its schema,
    as hpo.check does: the same overrides find the same stores."""
    register_configs()
    cs = ConfigStore.instance()
    cs.store(name="hpo_ui_schema", node=UiConfig)
    primary = OmegaConf.load(CONF_DIR / "config.yaml")
    defaults = ["hpo_ui_schema" if d == "hpo_schema" else d for d in primary.defaults]
    primary.defaults = [*defaults, {"override hydra/job_logging": "none"}]  # no log file
    # With no job logging, Hydra's own logging config is the root logger's: on stderr as
    # say()'s lines (Hydra's default is stdout), so that stdout holds the URL lines only.
    primary.hydra.hydra_logging = {
        "formatters": {"simple": {"format": "%(message)s"}},
        "handlers": {"console": {"stream": "ext://sys.stderr"}},
    }
    primary.hydra.output_subdir = None  # looking saves no config
    primary.hydra.run.dir = "."
    primary.hydra.job.name = "hpo_ui"
    primary.hydra.help.app_name = "hpo.ui"
    primary.hydra.help.header = (
        "hpo.ui: the study's runs in MLflow's UI (started light on a local store); "
        "--dashboard adds optuna-dashboard.\n"
    )
    primary.hydra.help.footer = (
        "Examples:\n  python -m hpo.ui study=xgb_f1\n"
        "  python -m hpo.ui study=xgb_f1 --dashboard port=5001\n"
        "  python -m hpo.ui study=xgb_f1 storage=postgres tracking=server --dashboard\n"
    )
    primary.hydra.help.template = (
        "${hydra.help.header}\nUsage: python -m hpo.ui study=NAME [tracking=...] [storage=...] "
        "[--dashboard] [port=5000] [dashboard_port=8080] [start_timeout=120]\n\n"
        "== Groups ==\n$APP_CONFIG_GROUPS\n${hydra.help.footer}"
    )
    cs.store(name="hpo_ui", node=primary)


_register()
_outcome: list[int | BaseException] = []
_rerun: list[str] = []  # the command that runs this study, for "run the study first"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="hpo_ui")
def _run(cfg: DictConfig) -> None:
    try:
        config = typed(cfg)
        assert isinstance(config, UiConfig)
        _outcome.append(look(config, " ".join(_rerun)))
    except (Exception, KeyboardInterrupt) as err:  # Hydra would print the overrides
        _outcome.append(err)


def rerun_command(argv: list[str]) -> str:
    """``python -m hpo`` with the overrides typed here that are not the UI's own."""
    kept = [arg for arg in argv if arg != DASHBOARD_FLAG and arg.split("=")[0] not in UI_KEYS]
    return " ".join(["python -m hpo", *(mask(arg) for arg in kept)])


def _interrupt(signum: int, frame: Any) -> NoReturn:
    """SIGTERM ends the command as Ctrl-C does: the servers are stopped, exit 0."""
    raise KeyboardInterrupt


def main() -> None:
    """Entry point of ``python -m hpo.ui`` and the ``hpo-ui`` console script."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    signal.signal(signal.SIGTERM, _interrupt)
    args = sys.argv[1:]
    _rerun.append(rerun_command(args))
    args = [("dashboard=true" if arg == DASHBOARD_FLAG else arg) for arg in args]
    sys.argv[1:] = hide_secrets(args)  # as in python -m hpo: Hydra never sees a password
    try:
        _run()
    except MissingConfigException as err:
        fail(missing_option(err))
    except (HydraException, OmegaConfBaseException) as err:
        fail(composition_error(err))
    except KeyboardInterrupt:
        sys.exit(0)
    outcome = _outcome[0] if _outcome else 0
    if isinstance(outcome, UserError):
        fail(str(outcome))
    if isinstance(outcome, ServerFailed):
        fail(str(outcome), status=1)
    if isinstance(outcome, KeyboardInterrupt):
        sys.exit(0)
    if isinstance(outcome, BaseException):
        raise outcome
    sys.exit(outcome)


if __name__ == "__main__":
    main()
