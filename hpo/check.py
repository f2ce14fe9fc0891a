"""``python -m hpo.check study=NAME [storage=...] [tracking=...] [repair=true]``.

Does the MLflow experiment agree with the Optuna study? Optuna is the record
of what happened (it is what the budget counts); MLflow is what people read.
Workers that die, writer processes stopped before they drained, or hands in
the MLflow UI can make them differ. Every finished trial must have exactly
one child run in the matching state, no run may be left RUNNING for a trial
that no longer runs, no run may stand for a trial that does not exist (or
duplicate one that does), and the study must have exactly one parent run,
the one its ``mlflow_parent_run_id`` user attr names.

Mismatches are printed as a table (exit status 1). ``repair=true`` makes
MLflow match Optuna: stale runs are closed as KILLED, states and tags set,
missing runs created (or restored) from the trial, and surplus runs tagged
``hpo.orphan`` rather than deleted, so nothing recorded is lost.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import optuna
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import FrozenTrial, TrialState

from hpo.__main__ import _composition_error, _fail, _missing_option
from hpo.config import CONF_DIR, Config, register_configs
from hpo.errors import UserError
from hpo.records import PARENT_ATTR, RUN_ATTR
from hpo.secrets import hide_secrets
from hpo.storage import display_url, mask, open_storage
from hpo.tracking import check_server

ORPHAN = "hpo.orphan"  # a surplus run, kept but marked: the reason
STATUSES = {  # Optuna state -> the MLflow statuses and hpo.state tags that agree with it
    TrialState.COMPLETE: ({"FINISHED"}, {"COMPLETE"}),
    TrialState.PRUNED: ({"FINISHED"}, {"PRUNED"}),
    TrialState.FAIL: ({"FAILED", "KILLED"}, {"FAIL", "KILLED"}),
}


@dataclass
class CheckConfig(Config):
    repair: bool = False  # make MLflow match Optuna, then check again


@dataclass
class Mismatch:
    """One disagreement, what each side says, and the repair that ends it."""

    problem: str
    trial: int | None
    run_id: str | None
    optuna: str
    mlflow: str
    fix: str
    repair: Callable[[], None]


class Check:
    """Compares one study with its experiment; each pass lists what still differs."""

    def __init__(self, study: optuna.Study, client: MlflowClient, experiment_id: str) -> None:
        self.study = study
        self.client = client
        self.experiment_id = experiment_id

    def mismatches(self) -> list[Mismatch]:
        runs = self._runs()
        live = [r for r in runs if r.info.lifecycle_stage == "active" and ORPHAN not in r.data.tags]
        deleted = [r for r in runs if r.info.lifecycle_stage != "active"]
        parents = [r for r in live if r.data.tags.get("hpo.role") == "study"]
        children = [r for r in live if r.data.tags.get("hpo.role") != "study"]
        found, parent_id = self._parent(parents, deleted)
        return found + self._children(children, deleted, parent_id)

    def _runs(self) -> list[Run]:
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], run_view_type=ViewType.ALL, max_results=5000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    # --- the parent run ------------------------------------------------------

    def _parent(self, parents: list[Run], deleted: list[Run]) -> tuple[list[Mismatch], str | None]:
        """The study's parent run: the one its user attr names, restored if deleted; else the
        oldest parent run, linked; else a new one. Any other parent run is surplus."""
        attr = self.study.user_attrs.get(PARENT_ATTR)
        parents = sorted(parents, key=lambda r: (r.info.run_id != attr, r.info.start_time))
        gone = [r for r in deleted if attr and r.info.run_id == attr]
        found: list[Mismatch] = []
        if gone and not (parents and parents[0].info.run_id == attr):
            found.append(self._restore(gone[0], None, "parent run deleted"))
            keep_id: str | None = attr
            extras = parents
        elif parents:
            keep_id, extras = parents[0].info.run_id, parents[1:]
            found.extend(self._linked(parents[0], attr))
        else:
            return [self._no_parent(attr)], None
        for extra in extras:
            why = f"parent is {(keep_id or '-')[:8]}"
            found.append(self._orphan(extra, None, "extra parent run", why))
        return found, keep_id

    def _linked(self, parent: Run, attr: str | None) -> list[Mismatch]:
        run_id = parent.info.run_id
        found = []
        if run_id != attr:
            found.append(
                Mismatch(
                    problem="parent not linked",
                    trial=None,
                    run_id=run_id,
                    optuna=f"{PARENT_ATTR}={attr}",
                    mlflow="parent run",
                    fix=f"set {PARENT_ATTR}",
                    repair=lambda: self.study.set_user_attr(PARENT_ATTR, run_id),
                )
            )
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if parent.info.status == "RUNNING" and not running:
            found.append(
                Mismatch(
                    problem="stale parent run",
                    trial=None,
                    run_id=run_id,
                    optuna="no trial running",
                    mlflow="RUNNING",
                    fix="close KILLED",
                    repair=lambda: self.client.set_terminated(run_id, "KILLED"),
                )
            )
        return found

    def _no_parent(self, attr: str | None) -> Mismatch:
        return Mismatch(
            problem="no parent run",
            trial=None,
            run_id=None,
            optuna=f"{PARENT_ATTR}={attr}",
            mlflow="-",
            fix="create it",
            repair=self._create_parent,
        )

    def _create_parent(self) -> None:
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study.study_name,
            tags={
                "hpo.study": self.study.study_name,
                "hpo.role": "study",
                "hpo.repaired": "hpo.check",
            },
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        self.study.set_user_attr(PARENT_ATTR, run.info.run_id)

    # --- one child run per trial ------------------------------------------------

    def _children(
        self, children: list[Run], deleted: list[Run], parent_id: str | None
    ) -> list[Mismatch]:
        trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        by_trial: dict[int, list[Run]] = {}
        found: list[Mismatch] = []
        for run in children:
            number = _trial_number(run)
            trial = trials.get(number) if number is not None else None
            if trial is None or trial.state == TrialState.WAITING:
                why = "no hpo.trial tag" if number is None else f"no trial {number} in the study"
                found.append(self._orphan(run, number, "orphan run", why))
            else:
                by_trial.setdefault(number, []).append(run)  # type: ignore[arg-type]
        for number, trial in sorted(trials.items()):
            runs = sorted(by_trial.get(number, []), key=lambda r: _preference(r, trial))
            for extra in runs[1:]:
                why = f"trial {number} has run {runs[0].info.run_id[:8]}"
                found.append(self._orphan(extra, number, "duplicate run", why))
            if trial.state not in STATUSES:
                continue  # running or waiting: its run is still being written
            if not runs:
                found.append(self._missing(trial, deleted, parent_id))
                continue
            found.extend(self._compare(trial, runs[0], parent_id))
        return found

    def _compare(self, trial: FrozenTrial, run: Run, parent_id: str | None) -> list[Mismatch]:
        found: list[Mismatch] = []
        statuses, states = STATUSES[trial.state]
        status, tag = run.info.status, run.data.tags.get("hpo.state", "-")
        run_id = run.info.run_id
        if status not in statuses or tag not in states:
            target, target_tag = _target(trial.state, status)
            stale = "stale RUNNING run" if status == "RUNNING" else "state differs"
            found.append(
                Mismatch(
                    problem=stale,
                    trial=trial.number,
                    run_id=run_id,
                    optuna=trial.state.name,
                    mlflow=f"{status}, hpo.state={tag}",
                    fix=f"{target}, hpo.state={target_tag}",
                    repair=lambda: self._set_state(trial, run, target, target_tag),
                )
            )
        if parent_id and run.data.tags.get("mlflow.parentRunId") != parent_id:
            found.append(
                Mismatch(
                    problem="wrong parent",
                    trial=trial.number,
                    run_id=run_id,
                    optuna=f"parent {parent_id[:8]}",
                    mlflow=f"parent {run.data.tags.get('mlflow.parentRunId', '-')[:8]}",
                    fix="set mlflow.parentRunId",
                    repair=lambda: self._set_parent(run_id, parent_id),
                )
            )
        return found

    def _set_parent(self, run_id: str, parent_id: str) -> None:
        self.client.set_tag(run_id, "mlflow.parentRunId", parent_id)

    def _set_state(self, trial: FrozenTrial, run: Run, status: str, tag: str) -> None:
        """The trial's state, reason and (when missing) its params and value on its run."""
        tags = {"hpo.state": tag, "hpo.repaired": "hpo.check"}
        if trial.state == TrialState.FAIL:
            tags["hpo.fail_reason"] = trial.user_attrs.get(
                "fail_reason", "the trial failed; closed by hpo check"
            )
        self._log(run.info.run_id, trial, tags, have=run)
        self.client.set_terminated(run.info.run_id, status, end_time=_ms(trial.datetime_complete))

    def _missing(self, trial: FrozenTrial, deleted: list[Run], parent_id: str | None) -> Mismatch:
        gone = [
            r
            for r in deleted
            if r.info.run_id == trial.user_attrs.get(RUN_ATTR) or _trial_number(r) == trial.number
        ]
        if gone:
            return self._restore(gone[0], trial.number, "run deleted")
        return Mismatch(
            problem="missing run",
            trial=trial.number,
            run_id=None,
            optuna=trial.state.name,
            mlflow="-",
            fix="create it from the trial",
            repair=lambda: self._create_child(trial, parent_id),
        )

    def _create_child(self, trial: FrozenTrial, parent_id: str | None) -> None:
        status, tag = _target(trial.state, "FINISHED")
        run = self.client.create_run(
            self.experiment_id,
            start_time=_ms(trial.datetime_start),
            run_name=f"trial-{trial.number:04d}",
            tags={
                "mlflow.parentRunId": parent_id or "",
                "hpo.study": self.study.study_name,
                "hpo.trial": str(trial.number),
            },
        )
        self._set_state(trial, run, status, tag)

    def _log(self, run_id: str, trial: FrozenTrial, tags: dict[str, str], have: Run) -> None:
        """Tags, plus the trial's params and value where the run lacks them."""
        params = {k: str(v) for k, v in trial.params.items() if k not in have.data.params}
        metric = self.study.user_attrs.get("metric", "value")
        metrics = {}
        value = trial.values[0] if trial.values else None  # the metric (first of several)
        if value is not None and metric not in have.data.metrics:
            metrics[metric] = value
            std = trial.user_attrs.get("cv", {}).get("std")
            if std is not None:
                metrics[f"{metric}_std"] = std
        now = _ms(trial.datetime_complete) or 0
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, mask(str(v))) for k, v in tags.items()],
        )

    # --- surplus and deleted runs ------------------------------------------------

    def _orphan(self, run: Run, number: int | None, problem: str, why: str) -> Mismatch:
        run_id, status = run.info.run_id, run.info.status

        def repair() -> None:
            self.client.set_tag(run_id, ORPHAN, why)
            if status == "RUNNING":
                self.client.set_terminated(run_id, "KILLED")

        fix = f"tag {ORPHAN}" + (", close KILLED" if status == "RUNNING" else "")
        return Mismatch(problem, number, run_id, optuna=why, mlflow=status, fix=fix, repair=repair)

    def _restore(self, run: Run, number: int | None, problem: str) -> Mismatch:
        run_id = run.info.run_id
        return Mismatch(
            problem=problem,
            trial=number,
            run_id=run_id,
            optuna="-",
            mlflow="deleted",
            fix="restore it",
            repair=lambda: self.client.restore_run(run_id),
        )


def _trial_number(run: Run) -> int | None:
    try:
        return int(run.data.tags["hpo.trial"])
    except (KeyError, ValueError):
        return None


def _preference(run: Run, trial: FrozenTrial) -> tuple[bool, bool, int]:
    """Which of a trial's runs is its own: the one it names, else one in its state, else the
    latest."""
    statuses, _ = STATUSES.get(trial.state, (set(), set()))
    return (
        run.info.run_id != trial.user_attrs.get(RUN_ATTR),
        run.info.status not in statuses,
        -(run.info.start_time or 0),
    )


def _target(state: TrialState, status: str) -> tuple[str, str]:
    """(MLflow status, hpo.state tag) a run of a trial in ``state`` should have."""
    if state == TrialState.FAIL:
        if status in ("RUNNING", "KILLED"):  # its process died: the writer's own verdict
            return "KILLED", "KILLED"
        return "FAILED", "FAIL"
    return "FINISHED", state.name


def _ms(when: Any) -> int | None:
    return int(when.timestamp() * 1000) if when is not None else None


# --- the command ------------------------------------------------------------------


def open_check(cfg: DictConfig) -> Check:
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
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            path = Path(url.removeprefix(prefix).removeprefix("//"))
            if not path.exists():
                raise UserError(f"no store at {path}: check {group}= or {key}=")


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


def check(cfg: DictConfig, repair: bool = False) -> int:
    """Print the mismatches (and repair them if asked); the exit status."""
    checker = open_check(cfg)
    study = checker.study
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
        _outcome.append(check(cfg, cfg.repair))
    except (Exception, KeyboardInterrupt) as err:  # Hydra would print the overrides
        _outcome.append(err)


def main() -> None:
    os.environ["HYDRA_FULL_ERROR"] = "1"
    _typed.extend(mask(arg) for arg in sys.argv[1:])
    sys.argv[1:] = hide_secrets(sys.argv[1:])  # as in python -m hpo: Hydra never sees them
    try:
        _run()
    except MissingConfigException as err:
        _fail(_missing_option(err))
    except (HydraException, OmegaConfBaseException) as err:
        _fail(_composition_error(err))
    outcome = _outcome[0] if _outcome else 0
    if isinstance(outcome, UserError):
        _fail(str(outcome))
    if isinstance(outcome, BaseException):
        raise outcome
    sys.exit(outcome)


if __name__ == "__main__":
    main()
