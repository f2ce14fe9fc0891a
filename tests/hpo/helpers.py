"""Shared by tests/hpo: small objectives that fail, return NaN or fail on some parameters on
purpose; the command line run as a user runs it; a pruner that prunes every first report."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from objectives.base import FoldData, FoldOutput, Objective, Reporter

ALWAYS_PRUNE = [
    "pruner._target_=optuna.pruners.ThresholdPruner",
    "+pruner.lower=2.0",  # f1 or roc_auc never reach 2: every report is "prune"
    "~pruner.n_startup_trials",
    "~pruner.n_warmup_steps",
    "~pruner.interval_steps",
]


def write_prior_study(
    folder: Path, name: str, sleep: float, n_trials: int | None, **more: object
) -> Path:
    """``folder``/studies/NAME.yaml: a PriorObjective study taking ``sleep`` seconds a fold, for
    command-line tests (``python -m hpo study=NAME`` run in ``folder``). ``more``: other
    top-level study keys (metric=log_loss, timeout=8)."""
    keys = {"metric": "roc_auc", "n_trials": "null" if n_trials is None else n_trials, **more}
    lines = [
        f"name: {name}",
        f"objective: {{_target_: tests.hpo.helpers.PriorObjective, sleep: {sleep}}}",
        "data: breast_cancer",
        "cv: {scheme: kfold, n_splits: 2}",
        *(f"{key}: {value}" for key, value in keys.items()),
        "space:",
        "  x: {type: float, low: 0.0, high: 1.0}",
    ]
    studies = folder / "studies"
    studies.mkdir(parents=True, exist_ok=True)
    path = studies / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


REPO = Path(__file__).parents[2]


def hpo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m hpo *args`` in ``cwd``, its output captured; the tests' objectives
    (``tests.hpo.helpers.PriorObjective``) import from any ``cwd``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hpo", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


@dataclass
class PriorObjective(Objective):
    """Predicts the training class prior (or mean): a cheap, deterministic objective."""

    task: str = "classification"
    flavor: str = "sklearn"
    requirements = ("scikit-learn",)
    fit_fact_names = ("calls",)
    fail_above: float | None = None  # fail when params["x"] is above this
    nan: bool = False
    sleep: float = 0.0  # seconds per fold, to keep a trial running

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        until = time.monotonic() + self.sleep
        while time.monotonic() < until and not fold.stopped():  # as a real objective stops
            time.sleep(min(0.05, self.sleep))
        if self.fail_above is not None and params.get("x", 0) > self.fail_above:
            raise RuntimeError(f"x={params['x']} is too large")
        level = float(np.mean(fold.y_train)) + 0.3 * float(params.get("x", 0))
        scores = np.full(len(fold.X_valid), np.nan if self.nan else level)
        return FoldOutput(scores, {"calls": 1.0})

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        info: dict[str, float],
        seed: int,
    ) -> Any:
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="prior").fit(X, y)

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(X)[:, 1])


@dataclass
class LockstepObjective(PriorObjective):
    """PriorObjective whose workers finish their trials at the same instants.

    Each process first waits until ``parties`` processes have reached the
    barrier folder, then every fit ends on the next multiple of ``tick``
    seconds of wall time: all workers then ask for their next trial at once,
    which is when a missing study lock shows (overshoot, duplicate grid points).
    """

    barrier: str = ""
    parties: int = 1
    tick: float = 0.5
    _met: bool = False

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        if not self._met:
            folder = Path(self.barrier)
            (folder / str(os.getpid())).touch()
            deadline = time.time() + 120
            while len(list(folder.iterdir())) < self.parties and time.time() < deadline:
                time.sleep(0.05)
            self._met = True
        time.sleep(self.tick - time.time() % self.tick)
        return super().fit_predict(params, fold, report)


@dataclass
class FlakyObjective(PriorObjective):
    """PriorObjective that fails the first time it meets each ``x`` in ``flaky`` (in-process)."""

    flaky: list[float] = field(default_factory=list)
    _seen: set[float] = field(default_factory=set)

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        x = params.get("x", 0)
        if x in self.flaky and x not in self._seen:
            self._seen.add(x)
            raise RuntimeError(f"x={x}: a passing failure")
        return super().fit_predict(params, fold, report)


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """Undo, after an in-process ``python -m hpo``, what main() and Hydra set for the whole
    process: the SIGTERM handler, the root logger's handlers and level, Optuna's verbosity."""
    handler, verbosity = signal.getsignal(signal.SIGTERM), optuna.logging.get_verbosity()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for added in set(root.handlers) - set(handlers):
            added.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        optuna.logging.set_verbosity(verbosity)
        signal.signal(signal.SIGTERM, handler)
