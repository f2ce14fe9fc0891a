"""Shared by the hpo.check tests: a finished study with COMPLETE and FAIL trials, and helpers."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.check import Mismatch, check, open_check
from hpo.config import Config
from hpo.names import RUN_ATTR
from hpo.runner import run
from hpo.storages import open_storage

REPO = Path(__file__).parents[3]
# a grid of two points, one of which fails: COMPLETE and FAIL trials (a failed point is retried)
TWO_STATES = [
    "study=tiny_prior",
    "pruner=none",
    "sampler=grid",
    "+study.space.x.grid=[0.1,0.9]",
    "+study.objective.fail_above=0.5",
    "tracking.writer=inline",
    "n_jobs=1",
]


@pytest.fixture
def cfg(make_cfg) -> Config:
    """A finished study with COMPLETE and FAIL trials, and its MLflow experiment."""
    cfg = make_cfg(*TWO_STATES)
    run(cfg)
    return cfg


def trials(cfg: Config) -> dict[TrialState, optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))
    by_state = {t.state: t for t in reversed(study.trials)}  # the first of each state
    assert set(by_state) == {TrialState.COMPLETE, TrialState.FAIL}
    return by_state


def client(cfg: Config) -> MlflowClient:
    return MlflowClient(cfg.tracking.uri)


def run_of(cfg: Config, trial: optuna.trial.FrozenTrial) -> Run:
    return client(cfg).get_run(trial.user_attrs[RUN_ATTR])


def problems(found: list[Mismatch]) -> list[tuple[int, str]]:
    """(trial number or -1, problem), sorted."""
    return sorted((-1 if m.trial is None else m.trial, m.problem) for m in found)


def repair(cfg: Config) -> None:
    """Repair, then the study and its experiment agree."""
    assert check(cfg, repair=True) == 0
    assert open_check(cfg).mismatches() == []
