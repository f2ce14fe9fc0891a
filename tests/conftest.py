"""Shared fixtures: the real Hydra config, composed with tiny budgets and temporary stores."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore

from hpo.config import CONF_DIR, Config, register_configs, typed

# Ctrl-C as a terminal sends it: a suite started in the background by a shell without job
# control (`cmd &` in a script, nohup) inherits SIGINT ignored, and so would every hpo
# process a test starts (an ignored signal stays ignored across exec; a caught one does not).
signal.signal(signal.SIGINT, signal.default_int_handler)
register_configs()
# A study that costs nothing to evaluate, for tests of the runner rather than of a model.
ConfigStore.instance().store(
    group="study",
    name="tiny_prior",
    node={
        "name": "tiny_prior",
        "objective": {"_target_": "tests.hpo.helpers.PriorObjective"},
        "data": "breast_cancer",
        "cv": {"scheme": "kfold", "n_splits": 3},
        "metric": "roc_auc",
        "n_trials": 3,
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    },
)

Compose = Callable[..., Config]


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow SQLite store for the session: creating its tables costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def make_cfg(tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Compose:
    """compose(*overrides): the project's typed config (as ``python -m hpo`` makes it) with
    this test's own storage and study name."""
    monkeypatch.chdir(tmp_path)

    def make(*overrides: str, name: str | None = None) -> Config:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[
                    f"storage.url=journal:{tmp_path}/optuna.journal",
                    f"tracking.uri={mlflow_uri}",
                    "progress=false",
                    *overrides,
                ],
            )
        if name is not None or not any(o.startswith("study.name=") for o in overrides):
            cfg.study.name = name or f"{cfg.study.name}-{uuid.uuid4().hex[:8]}"
        return typed(cfg)

    return make
