"""``python -m hpo.check study=NAME [storage=...] [tracking=...] [repair=true]``.

Does the MLflow experiment agree with the Optuna study? Workers that die,
writer processes stopped before they drained, or hands in the MLflow UI can
make them differ (hpo/check/compare.py says how). Mismatches are printed as a
table (exit status 1). ``repair=true`` makes MLflow match Optuna
(hpo/check/repair.py), so that nothing recorded is lost.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import hydra
import optuna
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import TrialState

from hpo.check.compare import Check, Mismatch
from hpo.cli import composition_error, fail, missing_option
from hpo.config import CONF_DIR, Config, register_configs, typed
from hpo.errors import UserError
from hpo.secrets import hide_secrets, mask
from hpo.storages import display_url, open_storage, storage_file
from hpo.tracking.relocate import relocate
from hpo.tracking.spool import Spool, quiet, spool_folder
from hpo.tracking.store import check_server
from hpo.tracking.writes import Writes


@dataclass
class CheckConfig(Config):
    repair: bool = False  # make MLflow match Optuna, then check again


def open_check(cfg: Config) -> Check:
    """The study and its experiment from the config; anything missing is a UserError."""
    name = cfg.study.name
    if not cfg.tracking.enabled:
        raise UserError("tracking.enabled is false: there is no MLflow experiment to compare")
    _must_exist(cfg.storage.url, "storage", "storage.url")
    storage = open_storage(cfg.storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise UserError(
            f"no study '{name}' in {display_url(cfg.storage)} (it has: {names}): "
            "check study=, study.name= and storage="
        ) from None
    uri = cfg.tracking.uri
    check_server(uri)
    _must_exist(uri, "tracking", "tracking.uri")
    client = MlflowClient(uri)
    relocate(uri, keep=cfg.tracking.artifact_location)  # the study folder moved or copied
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise UserError(f"no MLflow experiment '{name}' at {mask(uri)}: check tracking=")
    if experiment.lifecycle_stage != "active":
        raise UserError(
            f"MLflow experiment '{name}' is deleted: restore it (mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}) and check again"
        )
    return Check(study, client, experiment.experiment_id)


def _must_exist(url: str, group: str, key: str) -> None:
    """A check never creates an empty store where a mistyped path points."""
    path = storage_file(url)
    if path is not None and not path.exists():
        raise UserError(f"no store at {path}: check {group}= or {key}=")


def _waiting_writes(cfg: Config, client: MlflowClient, deliver: bool) -> None:
    """Say what waits in the study's spool (writes MLflow could not take when they were
    made: the full record of those trials) and, on repair, deliver it first."""
    spool = Spool(spool_folder(Path(cfg.tracking.spool), cfg.study.name))
    waiting = len(spool)
    if not waiting:
        return
    if not deliver:
        print(f"{waiting} MLflow writes wait in {spool.folder}: repair=true delivers them")
        return
    writes = Writes(cfg.tracking.uri, spool, client)
    with quiet():
        writes.caught_up(now=True)
    left = len(spool)
    print(
        f"delivered {waiting - left} waiting MLflow writes from {spool.folder}"
        + (f"; {left} still wait (is tracking reachable?)" if left else "")
    )


def table(mismatches: Iterable[Mismatch]) -> str:
    rows = [("trial", "run", "problem", "optuna", "mlflow", "repair")]
    for m in mismatches:
        trial = "-" if m.trial is None else str(m.trial)
        rows.append((trial, (m.run_id or "-")[:8], m.problem, m.optuna, m.mlflow, m.fix))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def check(cfg: Config, repair: bool = False) -> int:
    """Print the mismatches (and repair them if asked); the exit status."""
    checker = open_check(cfg)
    study = checker.study
    _waiting_writes(cfg, checker.client, repair)
    found = checker.mismatches()
    counts = {s.name.lower(): 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    print(f"study '{study.study_name}': {len(study.trials)} trials ({shown or 'none'})")
    if not found:
        print("MLflow agrees: one child run per finished trial, states match, one parent run")
        return 0
    print(table(found))
    if not repair:
        command = " ".join(["python -m hpo.check", *_typed, "repair=true"])
        print(f"{len(found)} mismatches: repair with `{command}`")
        return 1
    repaired = 0
    for _ in range(3):  # a new parent run makes its children's links the next pass's work
        for mismatch in found:
            mismatch.repair()
        repaired += len(found)
        found = checker.mismatches()
        if not found:
            print(f"repaired {repaired} mismatches: MLflow agrees with Optuna")
            return 0
    print(table(found))
    print(f"{len(found)} mismatches left after repair")
    return 1


def _register() -> None:
    """The main CLI's config (conf/config.yaml, every study) with ``repair`` in its schema."""
    register_configs()
    cs = ConfigStore.instance()
    cs.store(name="hpo_check_schema", node=CheckConfig)
    primary = OmegaConf.load(CONF_DIR / "config.yaml")
    defaults = ["hpo_check_schema" if d == "hpo_schema" else d for d in primary.defaults]
    primary.defaults = [*defaults, {"override hydra/job_logging": "stdout"}]  # no log file
    primary.hydra.output_subdir = None  # a check saves no config
    primary.hydra.run.dir = "."
    primary.hydra.job.name = "hpo_check"
    primary.hydra.help.app_name = "hpo.check"
    primary.hydra.help.header = (
        "hpo.check: compare a study's Optuna trials with its MLflow runs; repair=true repairs.\n"
    )
    primary.hydra.help.footer = (
        "Examples:\n  python -m hpo.check study=xgb_f1\n"
        "  python -m hpo.check study=xgb_f1 storage=postgres tracking=server repair=true\n"
    )
    primary.hydra.help.template = (
        "${hydra.help.header}\nUsage: python -m hpo.check study=NAME [storage=...] "
        "[tracking=...] [repair=true]\n\n== Groups ==\n$APP_CONFIG_GROUPS\n${hydra.help.footer}"
    )
    cs.store(name="hpo_check", node=primary)


_register()
_outcome: list[int | BaseException] = []
_typed: list[str] = []  # the command line as typed, passwords masked, to suggest the repair


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="hpo_check")
def _run(cfg: DictConfig) -> None:
    try:
        config = typed(cfg)
        assert isinstance(config, CheckConfig)
        _outcome.append(check(config, config.repair))
    except (Exception, KeyboardInterrupt) as err:  # Hydra would print the overrides
        _outcome.append(err)


def main() -> None:
    os.environ["HYDRA_FULL_ERROR"] = "1"
    _typed.extend(mask(arg) for arg in sys.argv[1:])
    sys.argv[1:] = hide_secrets(sys.argv[1:])  # as in python -m hpo: Hydra never sees them
    try:
        _run()
    except MissingConfigException as err:
        fail(missing_option(err))
    except (HydraException, OmegaConfBaseException) as err:
        fail(composition_error(err))
    outcome = _outcome[0] if _outcome else 0
    if isinstance(outcome, UserError):
        fail(str(outcome))
    if isinstance(outcome, BaseException):
        raise outcome
    sys.exit(outcome)


if __name__ == "__main__":
    main()
