"""The promises a fault must not break, each checked after the row and said held or broken.

Optuna's storage is the record of what ran; MLflow is what people read. After
any fault, once the processes have ended:

  a  no trial is RUNNING past the grace period (nobody would ever end it)
  b  trial numbers are unique
  c  one MLflow child run per finished trial, in the matching state, with the
     full record: params, the metric, its std, the fold series, the out-of-fold
     metrics and the fit facts (``python -m hpo.check``'s comparison, plus the
     record, which the check does not look at)
  d  the finished trials (COMPLETE + PRUNED) are exactly the budget
  e  nothing recorded before the fault is lost (trials, runs, their metrics)
  f  a user's fault ends in one line: stderr's last line starts with
     ``error:`` and there is no Traceback
  g  every process ends with its documented status (0, 2, 1, 130, 143) and
     prints no Traceback: not in the issue's list, added because a worker
     dying with a traceback (issue 11, defect 5) breaks none of a-f when the
     other workers finish the budget

A check that does not apply to a row (no budget to reach, nothing recorded
before a fault at start-up) is n/a, with the reason.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from benchmarks.faults.scene import Ended
from hpo.check.compare import Check
from hpo.config import StorageConfig
from hpo.names import (
    CV_ATTR,
    CV_FIT_FACTS,
    CV_FOLD_VALUES,
    CV_STD,
    FAIL_REASON_TAG,
    METRIC_ATTR,
    ORPHAN_TAG,
    ROLE_STUDY,
    ROLE_TAG,
    RUN_ATTR,
    TRIAL_TAG,
)
from hpo.storages import open_storage

NAMES = {
    "a": "running",
    "b": "numbers",
    "c": "mlflow",
    "d": "budget",
    "e": "kept",
    "f": "one line",
    "g": "exits",
}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SHOWN = 3  # problems named in a reason; the rest are counted


@dataclass(frozen=True)
class Verdict:
    held: bool | None  # None: the check does not apply to this row
    reason: str = ""

    @property
    def cell(self) -> str:
        return {True: "held", False: "BROKEN", None: "n/a"}[self.held]


def held(reason: str = "") -> Verdict:
    return Verdict(True, reason)


def na(reason: str) -> Verdict:
    return Verdict(None, reason)


def broken(problems: Iterable[str]) -> Verdict:
    found = list(problems)
    more = f" (+{len(found) - SHOWN} more)" if len(found) > SHOWN else ""
    return Verdict(False, "; ".join(found[:SHOWN]) + more)


def verdict(problems: list[str], ok: str = "") -> Verdict:
    return broken(problems) if problems else held(ok)


@dataclass(frozen=True)
class Snapshot:
    """What was recorded before the fault: finished trials and terminated child runs."""

    trials: Mapping[int, tuple[str, tuple[float, ...]]]  # number -> state, values
    runs: Mapping[str, tuple[str, frozenset[str]]]  # run id -> status, metric keys


@dataclass
class Evidence:
    """Everything the checks look at once a row is over."""

    storage_url: str
    study: str
    tracking_uri: str | None
    budget: int | None  # None: (d) does not apply, ``why`` says why
    ended: list[Ended]
    before: Snapshot | None = None  # None: the fault came before anything was recorded
    overdue: list[str] = field(default_factory=list)  # a live watch's (a) findings
    more: dict[str, list[str]] = field(default_factory=dict)  # row-specific problems, by check
    why: dict[str, str] = field(default_factory=dict)  # checks n/a by the row's design, why


def judge(evidence: Evidence) -> dict[str, Verdict]:
    """Every check's verdict (a-g) on one row."""
    verdicts = {"f": one_line(evidence.ended), "g": exits(evidence.ended)}
    try:
        study = load(evidence.storage_url, evidence.study)
    except Exception as err:  # the study cannot be read at all: every stored promise is broken
        unreadable = f"cannot load study '{evidence.study}': {first_line(err)}"
        verdicts |= {key: broken([unreadable]) for key in "abcde"}
    else:
        trials = study.get_trials(deepcopy=False)
        verdicts |= {
            "a": none_running(trials, evidence.overdue),
            "b": unique_numbers(trials),
            "c": mlflow_agrees(study, evidence.tracking_uri),
            "d": budget_met(trials, evidence.budget),
            "e": nothing_lost(trials, evidence.before, evidence.tracking_uri),
        }
    for key, reason in evidence.why.items():  # by the row's design, not a finding
        verdicts[key] = na(reason)
    for key, problems in evidence.more.items():
        if problems:
            verdicts[key] = broken([*problems, *_problems(verdicts[key])])
    return {key: verdicts[key] for key in NAMES}


def _problems(v: Verdict) -> list[str]:
    return [v.reason] if v.held is False else []


def load(storage_url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(StorageConfig(url=storage_url)))


# --- a, b, d: what Optuna's storage says -------------------------------------------


def none_running(trials: list[FrozenTrial], overdue: list[str]) -> Verdict:
    """No trial left RUNNING once every process has ended, nor overdue while they ran."""
    left = [
        f"trial {t.number} still RUNNING after every process ended"
        for t in trials
        if t.state == TrialState.RUNNING
    ]
    return verdict([*overdue, *left])


def unique_numbers(trials: list[FrozenTrial]) -> Verdict:
    twice = sorted(n for n, count in Counter(t.number for t in trials).items() if count > 1)
    return verdict([f"trial number {n} is used more than once" for n in twice])


def budget_met(trials: list[FrozenTrial], budget: int | None) -> Verdict:
    if budget is None:
        return na("no budget to reach")
    finished = sum(t.state in FINISHED for t in trials)
    if finished == budget:
        return held(f"{finished} finished")
    states = Counter(t.state.name for t in trials)
    shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return broken([f"{finished} finished trials, the budget is {budget} ({shown})"])


# --- c: MLflow against Optuna ------------------------------------------------------


def mlflow_agrees(study: optuna.Study, uri: str | None) -> Verdict:
    """hpo.check finds nothing to repair, and every finished trial's run holds its record."""
    if uri is None:
        return na("tracking off")
    try:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(study.study_name)
        if experiment is None:
            return broken([f"no MLflow experiment '{study.study_name}'"])
        check = Check(study, client, experiment.experiment_id)
        problems = [_mismatch(m) for m in check.mismatches()]
        runs = _child_runs(client, experiment.experiment_id)
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished():
                run = _run_of(trial, runs)
                if run is not None:
                    problems += record_problems(client, study, trial, run)
    except Exception as err:  # the tracking store itself unreadable
        return broken([f"cannot read MLflow at {uri}: {first_line(err)}"])
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    return verdict(problems, f"{finished} runs, full records")


def _mismatch(m: Any) -> str:
    where = "study" if m.trial is None else f"trial {m.trial}"
    return f"{where}: {m.problem} (optuna {m.optuna}, mlflow {m.mlflow})"


def _child_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    runs = client.search_runs([experiment_id], max_results=5000)
    return [
        r for r in runs if r.data.tags.get(ROLE_TAG) != ROLE_STUDY and ORPHAN_TAG not in r.data.tags
    ]


def _run_of(trial: FrozenTrial, runs: list[Run]) -> Run | None:
    """The trial's own run: the one it names, else the one tagged with its number."""
    named = trial.user_attrs.get(RUN_ATTR)
    mine = [r for r in runs if r.data.tags.get(TRIAL_TAG) == str(trial.number)]
    return next((r for r in mine if r.info.run_id == named), mine[0] if mine else None)


def record_problems(
    client: MlflowClient, study: optuna.Study, trial: FrozenTrial, run: Run
) -> list[str]:
    """What the run lacks of the trial's full record, or holds differently."""
    where = f"trial {trial.number}"
    problems = []
    params = run.data.params
    for key, value in trial.params.items():
        if params.get(key) != str(value):
            problems.append(f"{where}: param {key} is {params.get(key)!r}, not {value!r}")
    if trial.state == TrialState.FAIL:
        if FAIL_REASON_TAG not in run.data.tags:
            problems.append(f"{where}: FAIL run without {FAIL_REASON_TAG}")
        return problems
    cv = trial.user_attrs.get(CV_ATTR)
    if not isinstance(cv, dict):
        return problems  # pruned before its first fold: nothing measured
    metric = str(study.user_attrs.get(METRIC_ATTR, "value"))
    name = metric if trial.state == TrialState.COMPLETE else f"{metric}_partial"
    metrics = run.data.metrics
    folds = [float(v) for v in cv.get(CV_FOLD_VALUES, [])]
    value = trial.values[0] if trial.values and trial.state == TrialState.COMPLETE else None
    wanted: dict[str, float | None] = {name: value}  # a pruned trial's value is its last step
    if len(folds) > 1:
        wanted[f"{name}_std"] = cv.get(CV_STD)
    wanted |= {str(k): float(v) for k, v in dict(cv.get(CV_FIT_FACTS) or {}).items()}
    wanted["n_folds_run"] = float(len(folds))
    for key, value in wanted.items():
        if key not in metrics:
            problems.append(f"{where}: no metric {key}")
        elif value is not None and not _same(metrics[key], float(value)):
            problems.append(f"{where}: {key} is {metrics[key]:g}, Optuna says {value:g}")
    prefix = "oof_" if trial.state == TrialState.COMPLETE else "oof_partial_"
    if not any(k.startswith(prefix) for k in metrics):
        problems.append(f"{where}: no out-of-fold metrics ({prefix}*)")
    history = client.get_metric_history(run.info.run_id, f"{name}_fold")
    series = [m.value for m in sorted(history, key=lambda m: m.step)]
    if len(series) != len(folds) or not all(map(_same, series, folds)):
        problems.append(f"{where}: fold series {name}_fold is {series}, Optuna says {folds}")
    return problems


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))


# --- e: nothing recorded before the fault is lost ------------------------------------


def snapshot(storage_url: str, name: str, tracking_uri: str | None) -> Snapshot:
    """The finished trials and closed child runs as they stand now (before the fault)."""
    trials = load(storage_url, name).get_trials(deepcopy=False)
    kept = {
        t.number: (t.state.name, tuple(t.values or ())) for t in trials if t.state.is_finished()
    }
    runs: dict[str, tuple[str, frozenset[str]]] = {}
    if tracking_uri is not None:
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            for run in _child_runs(client, experiment.experiment_id):
                if run.info.status != "RUNNING":
                    runs[run.info.run_id] = (run.info.status, frozenset(run.data.metrics))
    return Snapshot(kept, runs)


def nothing_lost(trials: list[FrozenTrial], before: Snapshot | None, uri: str | None) -> Verdict:
    if before is None:
        return na("the fault came before anything was recorded")
    now = {t.number: _outcome(t) for t in trials}
    problems = [
        f"trial {n} was {was[0]} {list(was[1])}, is {now.get(n, ('gone', ()))[0]}"
        for n, was in sorted(before.trials.items())
        if now.get(n) != was
    ]
    if uri is not None:
        problems += _runs_lost(MlflowClient(uri), before)
    kept = f"{len(before.trials)} trials, {len(before.runs)} runs kept"
    return verdict(problems, kept)


def _outcome(trial: FrozenTrial) -> tuple[str, tuple[float, ...]]:
    return trial.state.name, tuple(trial.values or ())


def _runs_lost(client: MlflowClient, before: Snapshot) -> list[str]:
    problems = []
    for run_id, (status, keys) in before.runs.items():
        try:
            run = client.get_run(run_id)
        except Exception:
            problems.append(f"run {run_id[:8]} is gone")
            continue
        if run.info.lifecycle_stage != "active" or run.info.status != status:
            problems.append(f"run {run_id[:8]} was {status}, is {run.info.status}")
        if missing := keys - set(run.data.metrics):
            problems.append(f"run {run_id[:8]} lost metrics {sorted(missing)}")
    return problems


# --- f, g: how the processes ended --------------------------------------------------


def one_line(ended: list[Ended]) -> Verdict:
    """Each process that may end by the user's fault, and did not succeed, ends in one line."""
    judged = [e for e in ended if e.user_fault]
    if not judged:
        return na("no user's fault in this row")
    problems = []
    for e in judged:
        if e.returncode == 0:
            continue
        last = last_line(e.stderr)
        if "Traceback" in e.stderr:
            problems.append(f"{e.label} printed a Traceback (last line: {last[:120]!r})")
        elif not last.startswith("error:"):
            problems.append(f"{e.label} ended with {last[:120]!r}, not an error: line")
    return verdict(problems)


def exits(ended: list[Ended]) -> Verdict:
    problems = []
    for e in ended:
        if e.returncode is None:
            problems.append(f"{e.label} had not ended after the row's timeout (killed)")
            continue
        if e.returncode not in e.expected:
            want = " or ".join(str(c) for c in e.expected)
            problems.append(
                f"{e.label} exited {e.returncode}, not {want}: {last_line(e.stderr)[:160]!r}"
            )
        if "Traceback" in e.stderr or "Traceback" in e.stdout:
            printed = e.stderr if "Traceback" in e.stderr else e.stdout
            problems.append(f"{e.label} printed a Traceback: {_cause(printed)[:160]!r}")
    codes = ", ".join(f"{e.label} {e.returncode}" for e in ended)
    return verdict(problems, codes)


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _cause(stderr: str) -> str:
    """The exception line that ends the first traceback in ``stderr``."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "Traceback" in line)
    for line in lines[start + 1 :]:
        if line and not line.startswith((" ", "\t")):
            return line.strip()
    return last_line(stderr)


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]
