"""Where a study's MLflow experiment disagrees with its Optuna trials, each with its repair.

Optuna is the record of what happened (it is what the budget counts); MLflow
is what people read. Every finished trial must have exactly one child run in
the matching state, no run may be left RUNNING for a trial that no longer
runs, no run may stand for a trial that does not exist (or duplicate one that
does), and the study must have exactly one parent run, the one its
``mlflow_parent_run_id`` user attr names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from hpo.check.repair import STATUSES, Repairs, target
from hpo.names import (
    ORPHAN_TAG,
    PARENT_ATTR,
    ROLE_NESTED,
    ROLE_OUTER,
    ROLE_STUDY,
    ROLE_TAG,
    RUN_ATTR,
    STATE_TAG,
    TRIAL_TAG,
)

NOT_TRIALS = (ROLE_STUDY, ROLE_NESTED, ROLE_OUTER)  # runs of the study that are no trial's
ORPHAN = ORPHAN_TAG  # a surplus run, kept but marked: the reason


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
        self.repairs = Repairs(study, client, experiment_id)

    def mismatches(self) -> list[Mismatch]:
        runs = self._runs()
        live = [
            r for r in runs if r.info.lifecycle_stage == "active" and ORPHAN_TAG not in r.data.tags
        ]
        deleted = [r for r in runs if r.info.lifecycle_stage != "active"]
        parents = [r for r in live if r.data.tags.get(ROLE_TAG) == ROLE_STUDY]
        # the trials' runs: not the study's parent, nor nested CV's runs (no Optuna trial each)
        children = [r for r in live if r.data.tags.get(ROLE_TAG) not in NOT_TRIALS]
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
                    repair=lambda: self.repairs.client.set_terminated(run_id, "KILLED"),
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
            repair=self.repairs.create_parent,
        )

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
        status, tag = run.info.status, run.data.tags.get(STATE_TAG, "-")
        run_id = run.info.run_id
        if status not in statuses or tag not in states:
            status_to, tag_to = target(trial.state, status)
            stale = "stale RUNNING run" if status == "RUNNING" else "state differs"
            found.append(
                Mismatch(
                    problem=stale,
                    trial=trial.number,
                    run_id=run_id,
                    optuna=trial.state.name,
                    mlflow=f"{status}, hpo.state={tag}",
                    fix=f"{status_to}, hpo.state={tag_to}",
                    repair=lambda: self.repairs.set_state(trial, run, status_to, tag_to),
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
                    repair=lambda: self.repairs.set_parent(run_id, parent_id),
                )
            )
        return found

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
            repair=lambda: self.repairs.create_child(trial, parent_id),
        )

    # --- surplus and deleted runs ------------------------------------------------

    def _orphan(self, run: Run, number: int | None, problem: str, why: str) -> Mismatch:
        run_id, status = run.info.run_id, run.info.status

        def repair() -> None:
            self.repairs.tag_orphan(run_id, why, status)

        fix = f"tag {ORPHAN_TAG}" + (", close KILLED" if status == "RUNNING" else "")
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
            repair=lambda: self.repairs.client.restore_run(run_id),
        )


def _trial_number(run: Run) -> int | None:
    try:
        return int(run.data.tags[TRIAL_TAG])
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
