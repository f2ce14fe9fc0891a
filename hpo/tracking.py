"""MLflow tracking on MlflowClient: one experiment per study, one parent run, one child per trial.

Nothing here knows about a model family: the objective says which MLflow
flavour its refit model uses, and the runner hands over plain numbers.
Every trial costs three writes: create_run (tags), log_batch (params,
metrics, final tags) and set_terminated; hpo/run_writer.py makes them in a
process of their own. Study-level writes (parent run, plots, model) are
rare and made here directly.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo.config import TrackingConfig
from hpo.run_writer import make_writer
from hpo.storage import init_lock, mask

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"


@dataclass
class TrialRecord:
    """What the runner measured in one trial, ready to log."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL
    params: Mapping[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)  # step metrics
    tags: dict[str, str] = field(default_factory=dict)
    oof: tuple[str, Any, Any] | None = None  # (task, y_true, scores): scored by the writer


class Tracker:
    """Writes a study's runs to one MLflow experiment named after the study."""

    def __init__(self, cfg: TrackingConfig, study_name: str, sampler: str) -> None:
        self.uri = cfg.uri
        with init_lock(cfg.uri, "mlflow-schema"):  # opening the store creates its tables
            self.client = MlflowClient(tracking_uri=cfg.uri)
        self.study_name = study_name
        self.sampler = sampler
        self.experiment_id = self._experiment(cfg.artifact_location)
        self.parent_id: str | None = None
        self.writer = make_writer(cfg.uri, cfg.writer)

    def _experiment(self, artifact_location: str | None) -> str:
        found = self.client.get_experiment_by_name(self.study_name)
        if found is not None:
            return str(found.experiment_id)
        location = artifact_location or _default_artifacts(self.uri)
        try:
            return str(
                self.client.create_experiment(
                    self.study_name, artifact_location=location and f"{location}/{self.study_name}"
                )
            )
        except MlflowException:  # another worker created it first
            again = self.client.get_experiment_by_name(self.study_name)
            if again is None:
                raise
            return str(again.experiment_id)

    def open_parent(self, existing_id: str | None, tags: Mapping[str, str]) -> str:
        """Reuse the study's parent run if it exists, else create it. Call under the study lock."""
        if existing_id and self._exists(existing_id):
            self.client.update_run(existing_id, status="RUNNING")
            self.parent_id = existing_id
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=self.study_name,
                tags={"hpo.study": self.study_name, "hpo.role": "study", **tags},
            )
            self.parent_id = run.info.run_id
        return self.parent_id

    def _exists(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return False
        return run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active"

    def start_trial(self, number: int) -> str:
        """Open the trial's child run now, so a running trial is visible in the UI."""
        tags = {
            "mlflow.parentRunId": self.parent_id or "",
            "hpo.study": self.study_name,
            "hpo.trial": str(number),
            "hpo.state": "RUNNING",
            "hpo.sampler": self.sampler,
            "hpo.host": socket.gethostname(),
            "hpo.pid": str(os.getpid()),
        }
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
        self.writer.send(("open", run.info.run_id))
        return str(run.info.run_id)

    def end_trial(self, run_id: str, record: TrialRecord) -> None:
        """Log everything about the trial in one batch, then close the run with its state."""
        metrics = [(k, float(v), 0) for k, v in record.metrics.items()]
        metrics += [
            (k, float(v), step)
            for k, values in record.series.items()
            for step, v in enumerate(values)
        ]
        params = {k: str(v) for k, v in record.params.items()}
        tags = {k: mask(str(v)) for k, v in {"hpo.state": record.state, **record.tags}.items()}
        status = "FAILED" if record.state == "FAIL" else "FINISHED"
        self.writer.send(("end", run_id, metrics, params, tags, status, record.oof))

    def kill_trial(self, run_id: str, reason: str) -> None:
        """Close an interrupted trial's run as KILLED, so no run stays RUNNING."""
        self.writer.send(("kill", run_id, {"hpo.state": "KILLED", "hpo.fail_reason": mask(reason)}))

    def kill_run(self, run_id: str, reason: str) -> None:
        """Close the run of a trial another (dead) process left open."""
        self.client.set_tag(run_id, "hpo.state", "KILLED")
        self.client.set_tag(run_id, "hpo.fail_reason", mask(reason))
        self.client.set_terminated(run_id, status="KILLED")

    def flush(self) -> None:
        """Wait until every trial write has reached MLflow (drains the writer process)."""
        self.writer.close()

    def log_study(
        self,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        texts: Iterable[tuple[str, str]],
    ) -> None:
        """Summary numbers, tags and text artifacts (config, plots) on the parent run."""
        assert self.parent_id is not None
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.parent_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, mask(str(v))) for k, v in tags.items()],
        )
        for path, text in texts:
            self.client.log_text(self.parent_id, mask(text), path)

    def close_study(self, status: str = "FINISHED") -> None:
        if self.parent_id:
            self.client.set_terminated(self.parent_id, status=status)

    def parent_tag(self, key: str) -> str | None:
        assert self.parent_id is not None
        return self.client.get_run(self.parent_id).data.tags.get(key)

    def ui_command(self) -> str:
        return f"mlflow ui --backend-store-uri {mask(self.uri)}"


def _default_artifacts(uri: str) -> str | None:
    """Artifacts beside a local SQLite store: ./mlartifacts next to mlflow.db."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return str((db.parent if db.parent != Path("") else Path.cwd()).resolve() / "mlartifacts")
    return None


REQUIREMENTS = {"xgboost": ["xgboost-cpu"], "pytorch": ["torch"], "sklearn": ["scikit-learn"]}


def log_model(
    tracker: Tracker, model: Any, flavor: str, X_sample: Any, y_sample: Any, trial_number: int
) -> str:
    """Log the refit best model on the parent run with its flavour and a signature."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    import mlflow
    from mlflow.models import infer_signature

    assert tracker.parent_id is not None
    requirements = []
    for package in REQUIREMENTS.get(flavor, []):
        try:
            # local tags such as torch's "+cpu" are not on PyPI: pin the public release
            requirements.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            requirements.append(package)
    module = importlib.import_module(f"mlflow.{flavor}")
    mlflow.set_tracking_uri(tracker.uri)
    with mlflow.start_run(run_id=tracker.parent_id):
        info = module.log_model(
            model,
            name="best_model",
            signature=infer_signature(X_sample, y_sample),
            input_example=X_sample,  # mlflow.pytorch's default pt2 format traces the model on it
            pip_requirements=requirements or None,
            tags={"hpo.trial": str(trial_number)},
        )
    tracker.client.update_run(tracker.parent_id, status="RUNNING")
    return str(info.model_uri)
