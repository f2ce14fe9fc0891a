"""Rows where the user's objective raises or returns NaN."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from benchmarks.faults.rows.base import (
    Staged,
    evidence,
    file_scene,
    row,
)


@row("objective-raises")
def objective_raises(root: Path, budget: int = 6) -> Staged:
    with file_scene(root, budget, sleep=0.0) as s:
        s.write_study(fail_above=0.5)
        s.start(1)
        found = evidence(s)
        failed = sum(t.state == TrialState.FAIL for t in s.trials())
        yield f"RuntimeError for x > 0.5 ({failed} trials failed)", found


@row("objective-nan")
def objective_nan(root: Path, budget: int = 6) -> Staged:
    with file_scene(root, budget, sleep=0.0) as s:
        s.write_study(nan=True, max_failures=3)
        s.start(1, expected=(1,), user_fault=True)
        found = evidence(s)
        found.why["d"] = "the study stops after study.max_failures=3 failures in a row"
        yield "NaN scores for every trial (max_failures=3)", found
