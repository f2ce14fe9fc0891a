"""``python -m hpo.replay RUN_ID [tracking.uri=URI] [storage.url=URL] [tolerance=1e-6]``.

Re-runs one trial from what its MLflow run recorded and says, in one line,
whether it comes out the same: exit 0 when the value is within the tolerance
and nothing recorded differs; 1 naming what differs (the value, the data or
folds, a package version) or why the run cannot be replayed (not a trial run,
no config.yaml, a failed trial); 2 for a user error (unknown run id,
unreachable tracking), as ``python -m hpo``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import optuna

from hpo.cli import fail, first_line
from hpo.config import TrackingConfig
from hpo.cv import CVSetup, cross_validate
from hpo.errors import UserError
from hpo.replay import fingerprints, versions
from hpo.replay.recorded import (
    NotReplayable,
    Recorded,
    fold_series,
    open_client,
    read,
    typed_params,
)
from hpo.runner.plan import Plan, make_plan
from hpo.secrets import mask

USAGE = "python -m hpo.replay RUN_ID [tracking.uri=URI] [storage.url=URL] [tolerance=1e-6]"
TOLERANCE = 1e-6  # relative: folds, seeds and threads are the study's, so only noise is left


@dataclass(frozen=True)
class Outcome:
    """The report line and the exit status."""

    line: str
    status: int


@dataclass(frozen=True)
class Target:
    """What the replay must reproduce: a complete trial's value, or a fold-pruned trial's
    mean over the folds it ran (the first ``n_folds``)."""

    label: str  # the metric's name on the run
    value: float
    n_folds: int | None  # None: every fold


def replay(
    run_id: str,
    tracking_uri: str,
    storage_url: str | None = None,
    tolerance: float = TOLERANCE,
) -> Outcome:
    """Replay the trial of run ``run_id``. A UserError (unknown run, no tracking) is raised."""
    client = open_client(tracking_uri)
    try:
        rec = read(client, run_id)
        head = f"trial {rec.trial} of {rec.study}"
        plan = _plan(rec, head)
        params = typed_params(plan.space, rec.params)
        target = _target(rec, plan, params, head)
    except NotReplayable as err:
        return Outcome(str(err), 1)
    found = fingerprints.check(plan, rec.config, rec.parent.data.tags, storage_url)
    try:
        result = cross_validate(plan.objective, params, _setup(plan, target), None)
    except Exception as err:  # the trial ran then; that it fails now is what differs
        return Outcome(f"{head} fails now: {type(err).__name__}: {first_line(err)}", 1)
    packages = versions.check(client, rec.parent)
    value = _value(target, result.value, tolerance)
    recorded_folds = fold_series(client, run_id, f"{target.label}_fold")
    differs = found.differs + packages.differs
    if value is not None:
        differs.insert(0, value + _folds_apart(recorded_folds, result.fold_values, tolerance))
    notes = [*found.notes, *([] if packages.differs else [packages.note])]
    if differs:
        return Outcome(f"{head} replayed with differences: " + "; ".join(differs + notes), 1)
    within = f"recorded {target.value:.4f}, within {_sci(tolerance)}"
    shown = f"{target.label} {result.value:.4f} ({within})"
    return Outcome(f"{head} replayed: " + "; ".join([shown, *notes]), 0)


def _plan(rec: Recorded, head: str) -> Plan:
    """The study's plan from its recorded config; one that no longer plans here (a data
    file gone, an objective renamed) is a difference, not a user error."""
    try:
        return make_plan(rec.config)
    except UserError as err:
        raise NotReplayable(f"{head} cannot be set up again: {err}") from None


def _target(rec: Recorded, plan: Plan, params: dict[str, Any], head: str) -> Target:
    """What the run says the trial scored. A pruned trial's mean over whole folds is
    replayable; one stopped inside a fold (epoch reports) needed its pruner's calls."""
    metric = plan.spec.metric
    if rec.state == "COMPLETE" and metric in rec.metrics:
        return Target(metric, rec.metrics[metric], None)
    partial = f"{metric}_partial"
    if rec.state == "PRUNED" and partial in rec.metrics and "n_folds_run" in rec.metrics:
        if plan.objective.max_steps(params) is not None:
            raise NotReplayable(
                f"{head} was pruned inside a fold (its objective reports epochs): its "
                f"partial {metric} depends on where the pruner stopped it"
            )
        return Target(partial, rec.metrics[partial], int(rec.metrics["n_folds_run"]))
    raise NotReplayable(
        f"{head} ended {rec.state} with no recorded {metric}: there is no value to replay"
    )


def _setup(plan: Plan, target: Target) -> CVSetup:
    setup = plan.cv_setup
    if target.n_folds is None:
        return setup
    return dataclasses.replace(setup, folds=plan.folds[: target.n_folds])


def _value(target: Target, now: float, tolerance: float) -> str | None:
    """The value's difference as a phrase, or None within the (relative) tolerance."""
    gap = abs(now - target.value)
    scale = max(abs(now), abs(target.value))
    if gap <= max(tolerance * scale, 1e-12):  # a floor for values at 0 (an F1 of 0)
        return None
    relative = gap / scale if scale else math.inf
    return (
        f"{target.label} {now:.4f}, recorded {target.value:.4f} (relative difference "
        f"{_sci(relative)}, tolerance {_sci(tolerance)})"
    )


def _folds_apart(recorded: list[float], now: list[float], tolerance: float) -> str:
    """Which folds moved, when the run kept its per-fold series."""
    if len(recorded) != len(now):
        return ""
    apart = [
        str(i)
        for i, (a, b) in enumerate(zip(recorded, now, strict=True))
        if abs(a - b) > tolerance * max(abs(a), abs(b), 1e-12)
    ]
    if not apart:
        return ""
    many = len(apart) > 1
    return (
        f", fold{'s' if many else ''} {', '.join(apart)} of {len(now)} differ{'' if many else 's'}"
    )


def _sci(x: float) -> str:
    """1e-06 -> 1e-6: as a person writes it."""
    return f"{x:.2g}".replace("e-0", "e-").replace("e+0", "e+")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage and exits 2
        fail(f"{message}: {USAGE}")


@dataclass(frozen=True)
class Args:
    run_id: str
    tracking_uri: str
    storage_url: str | None
    tolerance: float


def parse(argv: Sequence[str]) -> Args:
    parser = _Parser(
        prog="python -m hpo.replay",
        description="Re-run one trial from its MLflow run and compare its value.",
        epilog=f"usage: {USAGE}",
    )
    parser.add_argument("run_id", help="the trial's MLflow child run id")
    parser.add_argument("settings", nargs="*", default=[], metavar="KEY=VALUE", help="see usage")
    parser.add_argument("--tolerance", type=float, help=f"relative (default {TOLERANCE:g})")
    ns = parser.parse_args(list(argv))
    given = dict(_setting(s) for s in ns.settings)
    text = given.pop("tolerance", None)
    tolerance = TOLERANCE if ns.tolerance is None else ns.tolerance
    if text is not None:
        try:
            tolerance = float(text)
        except ValueError:
            fail(f"tolerance={text} is not a number: give tolerance=1e-6")
    if not tolerance >= 0:
        fail(f"tolerance {tolerance} is negative: give tolerance=1e-6 or larger")
    uri = given.pop("tracking.uri", None) or TrackingConfig().uri
    return Args(ns.run_id, uri, given.pop("storage.url", None) or None, tolerance)


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or key not in ("tracking.uri", "storage.url", "tolerance"):
        fail(f"unknown setting '{key}': use tracking.uri=, storage.url= or tolerance= ({USAGE})")
    return key, value


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``python -m hpo.replay``: one line on stdout, or one ``error:``."""
    args = parse(sys.argv[1:] if argv is None else argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        outcome = replay(args.run_id, args.tracking_uri, args.storage_url, args.tolerance)
    except UserError as err:
        fail(str(err))
    print(mask(outcome.line), flush=True)
    sys.exit(outcome.status)
