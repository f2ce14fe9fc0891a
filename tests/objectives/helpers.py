"""Small data and tiny objectives that the objective tests share (one place, no test imports)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from sklearn.datasets import make_classification, make_regression

from hpo import cv
from hpo.config import CVConfig
from hpo.data import Dataset
from hpo.folds import make_folds
from hpo.metrics import get_metric
from objectives.base import FoldData, Objective

# The MLP at its smallest that still learns: seconds for a whole test module.
MLP_FAST: dict[str, Any] = {"max_epochs": 3, "width": 16, "batch_size": 32}
# LoRA on 8 intents x 12 utterances, one short epoch: seconds per fit.
TINY_INTENTS: dict[str, Any] = {"name": "intents", "per_intent": 12}
LORA_FAST: dict[str, Any] = {"epochs": 1, "max_length": 24, "latency_examples": 4, "lr": 5.0e-3}


def fold(
    n_classes: int = 2, n: int = 200, n_valid: int = 50, seed: int = 0, metric: bool = True
) -> tuple[FoldData, np.ndarray]:
    """A FoldData (with the study metric) and the validation labels the objective never sees."""
    if n_classes:
        X, y = make_classification(
            n_samples=n, n_features=6, n_informative=4, n_classes=n_classes, random_state=seed
        )
        score = get_metric("accuracy", "classification")
    else:
        X, y = make_regression(n_samples=n, n_features=5, noise=5.0, random_state=seed)
        y = y + 100.0  # far from zero: the target must be standardized to learn quickly
        score = get_metric("rmse", "regression")
    X = (X * 10 + 3).astype(np.float32)  # unscaled features: the scaler must matter
    data = FoldData(
        X[n_valid:], y[n_valid:], X[:n_valid], n_classes, seed, 1, score if metric else None
    )
    return data, y[:n_valid]


def holdout_fold(data: Dataset) -> FoldData:
    """A quarter of ``data`` held out, as the harness would hand it over (no validation labels)."""
    folds = make_folds(CVConfig(scheme="holdout", test_size=0.25, seed=0), data)
    train, valid = folds[0]
    return FoldData(data.X[train], data.y[train], data.X[valid], data.n_classes, 0)


def trial_check(trial: optuna.Trial) -> Callable[[int, float], bool]:
    """A Reporter that reports to an Optuna trial and asks its pruner."""

    def should_prune(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return should_prune


def run_cv(
    objective: Objective,
    params: dict[str, Any],
    data: Dataset,
    folds: Any,
    metric: Any,
    seed: int = 0,
    should_prune: Callable[[int, float], bool] | None = None,
    n_jobs: int = 1,
) -> Any:
    """One trial through the CV harness (hpo.cv.cross_validate), whichever way it is called.

    The harness's signature is being reshaped (the settings as one CVSetup);
    the objective tests only need it to run a trial, so they call it here.
    """
    setup_type = getattr(cv, "CVSetup", None)
    if setup_type is not None:
        setup = setup_type(data, folds, metric, seed=seed, n_jobs=n_jobs)
        return cv.cross_validate(objective, params, setup, should_prune)
    return cv.cross_validate(  # type: ignore[call-arg]
        objective, params, data, folds, metric, seed, should_prune, n_jobs=n_jobs
    )
