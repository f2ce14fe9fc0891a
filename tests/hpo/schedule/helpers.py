"""Shared by the nightly tests: a night's config, and what the simulated nights left behind.

The objective is PriorObjective scored by log loss: it predicts the training
prior plus 0.3 * x, so a smaller x is a better model, and each night's space
for x decides whether its winner beats the champion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import optuna
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from hpo.config import CONF_DIR, Config, typed
from hpo.names import PARENT_ATTR
from hpo.report import Summary
from hpo.storages import open_storage

REPO = Path(__file__).parents[3]
NIGHTS = ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04")
REPORT = "nightly/report.html"


@dataclass
class Nights:
    """Everything the simulated nights left behind, read back by the tests."""

    base: str
    storage: str
    tracking: str
    summaries: dict[str, Summary] = field(default_factory=dict)
    failure: BaseException | None = None
    warnings: list[str] = field(default_factory=list)
    versions_before_rerun: int = 0
    trials_before_rerun: list[dict] = field(default_factory=list)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking, registry_uri=self.tracking)

    def study(self, night: str) -> optuna.Study:
        storage = open_storage(compose_cfg(self, night).storage)
        return optuna.load_study(study_name=f"{self.base}-{night}", storage=storage)

    def parent(self, night: str) -> mlflow.entities.Run:
        return self.client.get_run(self.study(night).user_attrs[PARENT_ATTR])

    def ledger(self) -> dict[str, mlflow.entities.Run]:
        experiment = self.client.get_experiment_by_name(f"{self.base}-nightly")
        assert experiment is not None
        runs = self.client.search_runs([experiment.experiment_id])
        return {r.data.tags["hpo.nightly.date"]: r for r in runs}

    def champion(self) -> mlflow.entities.model_registry.ModelVersion:
        return self.client.get_model_version_by_alias(self.base, "champion")


def compose_cfg(nights: Nights, night: str, *overrides: str) -> Config:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "study=tiny_prior",
                "schedule=nightly",
                f"schedule.date={night}",
                "study.metric=log_loss",
                f"study.data={{path:'{Path(nights.storage).parent}/data.csv',target:target}}",
                "pruner=none",
                "sampler=random",
                f"storage.url=journal:{nights.storage}",
                f"tracking.uri={nights.tracking}",
                "tracking.writer=inline",
                "n_jobs=1",
                "progress=false",
                *overrides,
            ],
        )
    cfg.study.name = nights.base
    return typed(cfg)


def write_data(path: Path, drop: int = 0) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame.iloc[drop:].to_csv(path, index=False)


class Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())
