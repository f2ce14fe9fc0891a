"""Shared by the runner's tests: overrides that keep studies fast, and both stores read back."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from hpo.config import Config
from hpo.storages import open_storage

FAST_XGB = ["study.objective.max_rounds=20", "study.objective.early_stopping_rounds=5"]
STUDIES = {"xgb_f1": "f1", "xgb_imbalanced_ap": "average_precision", "xgb_rmse": "rmse"}
SHIPPED = sorted(p.stem for p in (Path(__file__).parents[3] / "studies").glob("*.yaml"))
PRIOR = ["study=tiny_prior", "pruner=none"]


def load(cfg: Config) -> optuna.Study:
    return optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))


def runs(cfg: Config) -> tuple[mlflow.entities.Run, list[mlflow.entities.Run]]:
    """The study's parent run and its child runs, read back from MLflow."""
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.study.name)
    assert experiment is not None
    every = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in every if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1, f"expected one parent run, found {len(parents)}"
    children = [r for r in every if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(every) - 1, "every other run is a child of the parent"
    return parents[0], sorted(children, key=lambda r: int(r.data.tags["hpo.trial"]))
