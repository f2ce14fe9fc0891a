"""Rows of schedule=nightly: two runs of one night; a night killed at each step of its end."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from benchmarks.faults.invariants import NAMES, Evidence, first_line, judge, load, snapshot
from benchmarks.faults.rows.base import (
    NIGHT,
    Staged,
    evidence,
    file_scene,
    row,
)
from benchmarks.faults.scene import Scene
from hpo.failpoints import ENV, NIGHT_STEPS
from hpo.names import (
    CHAMPION_PREFIX,
    DECISION_TAG,
    MODEL_TRIAL_TAG,
    MODEL_URI_TAG,
    NIGHT_TAG,
    NIGHTLY_ATTEMPTS_TAG,
    PARENT_ATTR,
    ROLE_NIGHT,
    ROLE_TAG,
    TRIAL_TAG,
)
from hpo.schedule.names import dated
from hpo.schedule.night import REPORT

ALIAS = "champion"  # conf/schedule/nightly.yaml's schedule.alias


@row("nightly-together")
def nightly_together(root: Path, budget: int = 4) -> Staged:
    """Two runs of the same night at once: one runs it, the other exits 2 in one line."""
    with file_scene(root, budget, sleep=0.2) as s:
        night = ("schedule=nightly", f"schedule.date={NIGHT}")
        s.start(2, *night, expected=(0, 2), user_fault=True)
        found = evidence(s)
        found.study = f"{s.name}-{NIGHT}"
        codes = sorted(-1 if e.returncode is None else e.returncode for e in found.ended)
        if codes != [0, 2]:
            found.more["f"] = [f"exit statuses {codes}: one must run the night, one be refused"]
        yield f"2 runs of night {NIGHT} started at once (exits {codes})", found


@row("nightly-killed")
def nightly_killed(root: Path, budget: int = 4) -> Staged:
    """A night SIGKILLed at each step of its end (hpo/failpoints.py), then run again.

    Each step on a scene of its own. The rerun must finish the night as if it had
    never been cut off: a-f on the dated study, and under (g) one model version of
    the night holding the alias, the ledger run FINISHED on its second attempt, one
    best model on the parent run, no run left RUNNING.
    """
    problems: dict[str, list[str]] = {}  # check -> "<step>: reason", for every step it broke
    last: Evidence | None = None
    as_planned = 0
    for step in NIGHT_STEPS:
        try:
            found = _killed_then_rerun(root / step, step, budget)
        except Exception as err:  # the step itself could not be run: every check, named
            for key in NAMES:
                problems.setdefault(key, []).append(f"{step}: the step failed: {first_line(err)}")
            continue
        for key, verdict in judge(found).items():
            if verdict.held is False:
                problems.setdefault(key, []).append(f"{step}: {verdict.reason}")
        as_planned += [e.returncode for e in found.ended] == [-signal.SIGKILL, 0]
        last = found
    steps = f"{NIGHT_STEPS[0]} .. {NIGHT_STEPS[-1]}"
    injected = (
        f"SIGKILL at {len(NIGHT_STEPS)} end steps ({steps}), each night rerun: "
        f"killed then exit 0 at {as_planned} of {len(NIGHT_STEPS)}"
    )
    # The decorator judges the evidence yielded: the last step's, for the checks every
    # step held; a check broken at some step shows the steps' own reasons, judged above.
    base = last or Evidence("", "", None, None, [])
    yield injected, dataclasses.replace(base, more=problems, why=dict.fromkeys(problems, ""))


def _killed_then_rerun(root: Path, step: str, budget: int) -> Evidence:
    """One night killed at ``step``, then the same command again; its evidence."""
    root.mkdir()
    with file_scene(root, budget, sleep=0.0) as s:
        night = ("schedule=nightly", f"schedule.date={NIGHT}")
        study = dated(s.name, NIGHT)
        killed = s.start(1, *night, label="killed", expected=(-signal.SIGKILL,), env={ENV: step})
        s.wait_all(killed)
        kept = snapshot(s.storage_url, study, s.tracking_uri)  # what the killed night recorded
        s.start(1, *night, label="rerun")
        found = evidence(s, before=kept)
        found.study = study
        found.more["g"] = night_problems(s, study)
        return found


def night_problems(s: Scene, study: str) -> list[str]:
    """What a night leaves once it ended, however often it was cut off before."""
    client = MlflowClient(s.tracking_uri, registry_uri=s.tracking_uri)
    parent_id = str(load(s.storage_url, study).user_attrs.get(PARENT_ATTR, ""))
    if not parent_id:
        return [f"study {study} has no parent run"]
    return [
        *_version_problems(client, s.name, parent_id),
        *_ledger_problems(client, s.name),
        *_model_problems(client, parent_id),
        *_running(client, [study, f"{s.name}-nightly"]),
    ]


def _version_problems(client: MlflowClient, model: str, parent_id: str) -> list[str]:
    """One model version of the night, from the parent run's model, holding the alias."""
    versions = [
        v for v in client.search_model_versions(f"name='{model}'") if v.tags.get(NIGHT_TAG) == NIGHT
    ]
    if len(versions) != 1:
        return [f"{len(versions)} model versions of night {NIGHT}, not 1"]
    version = versions[0]
    problems = []
    if version.run_id != parent_id:
        problems.append(f"version {version.version} is of run {version.run_id}, not the parent")
    if version.tags.get(DECISION_TAG) != "first":
        problems.append(f"version {version.version}: decision {version.tags.get(DECISION_TAG)}")
    try:
        holder = str(client.get_model_version_by_alias(model, ALIAS).version)
    except MlflowException as err:
        holder = f"nothing ({first_line(err)})"
    if holder != str(version.version):
        problems.append(f"alias {ALIAS} is on {holder}, not version {version.version}")
    return problems


def _ledger_problems(client: MlflowClient, base: str) -> list[str]:
    """The night's ledger run: FINISHED on its second attempt, with the decision and report."""
    experiment = client.get_experiment_by_name(f"{base}-nightly")
    if experiment is None:
        return [f"no ledger experiment {base}-nightly"]
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{ROLE_TAG}` = '{ROLE_NIGHT}' AND attributes.run_name = '{NIGHT}'",
    )
    if len(runs) != 1:
        return [f"{len(runs)} ledger runs of night {NIGHT}, not 1"]
    run = runs[0]
    tags = run.data.tags
    problems = []
    if run.info.status != "FINISHED":
        problems.append(f"ledger run is {run.info.status}, not FINISHED")
    if tags.get(NIGHTLY_ATTEMPTS_TAG) != "2":
        problems.append(f"ledger run counts {tags.get(NIGHTLY_ATTEMPTS_TAG)} attempts, not 2")
    if tags.get(CHAMPION_PREFIX + "decision") != "first":
        problems.append(f"ledger run's decision is {tags.get(CHAMPION_PREFIX + 'decision')}")
    folder = str(Path(REPORT).parent)
    if REPORT not in [a.path for a in client.list_artifacts(run.info.run_id, folder)]:
        problems.append(f"ledger run has no {REPORT}")
    return problems


def _model_problems(client: MlflowClient, parent_id: str) -> list[str]:
    """One ready best model on the parent run: the one its tags name."""
    parent = client.get_run(parent_id)
    found = client.search_logged_models(
        [parent.info.experiment_id],
        filter_string=f"source_run_id = '{parent_id}' AND name = 'best_model'",
    )
    ready = [m for m in found if m.status == LoggedModelStatus.READY]
    if len(ready) != 1:
        return [f"{len(ready)} best models on the parent run, not 1"]
    tags = parent.data.tags
    problems = []
    if ready[0].tags.get(TRIAL_TAG) != tags.get(MODEL_TRIAL_TAG):
        problems.append(f"the best model is of trial {ready[0].tags.get(TRIAL_TAG)}")
    if tags.get(MODEL_URI_TAG) != ready[0].model_uri:
        problems.append(f"the parent run names model {tags.get(MODEL_URI_TAG)}")
    return problems


def _running(client: MlflowClient, experiments: list[str]) -> list[str]:
    problems = []
    for name in experiments:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            problems.append(f"no experiment {name}")
            continue
        for run in client.search_runs([experiment.experiment_id], max_results=5000):
            if run.info.status == "RUNNING":
                problems.append(f"run {run.info.run_name} of {name} still RUNNING")
    return problems
