"""The refit best model on the parent run: its MLflow flavour, signature and pip requirements.

The objective names both the flavour (``Objective.flavor``) and the packages
its model needs (``Objective.requirements``): nothing here knows a model
family, and a new objective needs no change here. The signature names the
data's columns (``Dataset.feature_names``: doubles, or one string column of
texts), so the logged model takes a DataFrame of them, as the input example
shows.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModel, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.models.utils import _save_example  # as the flavours write examples (no public one)

from hpo.names import TRIAL_TAG

if TYPE_CHECKING:
    from hpo.evaluation import Threshold
    from hpo.tracking.tracker import Tracker
    from objectives.base import Objective


def pinned(packages: Iterable[str]) -> list[str]:
    """``name==version`` for each installed package, the bare name for any other.

    Local version tags such as torch's ``+cpu`` are not on PyPI: the public
    release is pinned instead.
    """
    requirements = []
    for package in packages:
        try:
            requirements.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            requirements.append(package)
    return requirements


def input_frame(X: np.ndarray, feature_names: Sequence[str]) -> pd.DataFrame:
    """Rows ``X`` as the logged model takes them: one double column per feature, named.

    Texts (a 1-D object array, hpo/data/base.py) are one string column,
    named by the data set's one feature name (``text``).
    """
    if X.dtype.kind == "O":
        return pd.DataFrame({feature_names[0]: [str(x) for x in X]})
    return pd.DataFrame(np.asarray(X, dtype=np.float64), columns=list(feature_names))


def log_model(
    tracker: Tracker,
    objective: Objective,
    model: Any,
    X_sample: np.ndarray,
    y_sample: Any,
    trial_number: int,
    *,
    feature_names: Sequence[str],
) -> str:
    """Log ``objective``'s refit ``model`` on the parent run with its flavour and a signature.

    The signature and the input example are ``X_sample`` with its columns
    named (``input_frame``), the output ``y_sample``'s shape. The pip
    requirements are the objective's, pinned to the installed versions; an
    objective that names none leaves MLflow to infer them (slow: MLflow
    loads the model in a subprocess to see what it imports).
    """
    assert tracker.parent_id is not None
    frame = input_frame(X_sample, feature_names)
    settings: dict[str, Any] = {
        "name": "best_model",
        "signature": infer_signature(frame, y_sample),
        "input_example": frame,
        "pip_requirements": pinned(objective.requirements) or None,
        "tags": {TRIAL_TAG: str(trial_number)},
    }
    # The flavours log through MLflow's fluent API, which reads the process-wide URI; this
    # process tracks to one store only, and models:/ URIs (the registry, pyfunc loading)
    # resolve through the same setting afterwards.
    mlflow.set_tracking_uri(tracker.uri)
    with mlflow.start_run(run_id=tracker.parent_id):
        if objective.flavor == "pyfunc":  # a PythonModel: its artifacts (folders) beside the pickle
            info = mlflow.pyfunc.log_model(
                python_model=model, artifacts=model.artifacts(), **settings
            )
        elif objective.flavor == "pytorch":
            info = Model.log(artifact_path=None, flavor=_NamedPT2, pytorch_model=model, **settings)
        else:
            module = importlib.import_module(f"mlflow.{objective.flavor}")
            info = module.log_model(model, **settings)
    tracker.client.update_run(tracker.parent_id, status="RUNNING")
    return str(info.model_uri)


class _NamedPT2:
    """mlflow.pytorch's pt2 format (``torch.export``, loads without pickle), with named columns.

    pt2 traces the module on a tensor, so mlflow.pytorch takes only a tensor
    signature and example, although its pyfunc feeds the module a DataFrame's
    values as float32 rows all the same. This flavour (for ``Model.log``) saves
    the module traced on the example's rows, then writes the named signature and
    the DataFrame example in place of the tensor ones; ``Model.log`` goes on to
    check that the saved model serves that example. A quantized module (packed
    int8 weights, which torch.export cannot trace) is pickled instead.
    """

    @staticmethod
    def save_model(
        path: str,
        mlflow_model: Model,
        pytorch_model: Any,
        signature: ModelSignature,
        input_example: pd.DataFrame,
        **settings: Any,
    ) -> None:
        if _packed(pytorch_model):  # torch.export cannot trace torch.ao's int8 weights
            mlflow.pytorch.save_model(
                pytorch_model,
                path,
                mlflow_model=mlflow_model,
                signature=signature,
                input_example=input_example,
                serialization_format="pickle",
                **settings,
            )
            return
        rows = input_example.to_numpy(dtype=np.float32, copy=True)
        mlflow.pytorch.save_model(
            pytorch_model, path, mlflow_model=mlflow_model, input_example=rows, **settings
        )
        mlflow_model.signature = signature
        _save_example(mlflow_model, input_example, path)  # over the tensor example's files
        mlflow_model.save(str(Path(path, MLMODEL_FILE_NAME)))


def _packed(module: Any) -> bool:
    """Whether the module holds quantized (packed) weights, which only pickle can save."""
    import torch

    return any(
        isinstance(value, torch.ScriptObject)
        for part in module.modules()
        for value in vars(part).values()
    )


def best_models(tracker: Tracker, trial_number: int) -> list[LoggedModel]:
    """The parent run's ready ``best_model``s of trial ``trial_number``, oldest first.

    More than one means several processes finished the study at the same
    moment (workers on many machines), or a run was cut off between logging
    the model and tagging the parent run with it.
    """
    assert tracker.parent_id is not None
    found = tracker.client.search_logged_models(
        [tracker.experiment_id],
        filter_string=(
            f"source_run_id = '{tracker.parent_id}' AND name = 'best_model' "
            f"AND tags.`{TRIAL_TAG}` = '{trial_number}'"
        ),
    )
    ready = [m for m in found if m.status == LoggedModelStatus.READY]
    return sorted(ready, key=lambda m: (m.creation_timestamp, m.model_id))


def keep_one(tracker: Tracker, trial_number: int) -> str | None:
    """Delete all but the oldest ``best_model`` of the trial; the one kept's URI.

    Every process that finishes the study at once keeps the same one, so the
    study ends with one current best model whichever of them gets here last.
    """
    models = best_models(tracker, trial_number)
    for extra in models[1:]:
        with contextlib.suppress(MlflowException):  # deleted already by another process
            tracker.client.delete_logged_model(extra.model_id)
    return str(models[0].model_uri) if models else None


DECISION_MODEL = Path(__file__).with_name("decision_model.py")  # MLflow's "models from code"


def log_decision_model(
    tracker: Tracker,
    objective: Objective,
    scorer_uri: str,
    threshold: Threshold,
    X_sample: np.ndarray,
    trial_number: int,
    *,
    feature_names: Sequence[str],
) -> str:
    """Log ``decision_model`` on the parent run: the scorer at ``scorer_uri`` (the best
    model) with the cost-chosen ``threshold`` applied, so that serving it gives 0/1. It
    takes what the scorer takes: a DataFrame of the named columns (``input_frame``)."""
    assert tracker.parent_id is not None
    config = {
        "threshold": threshold.value,
        "cost_fp": threshold.cost_fp,
        "cost_fn": threshold.cost_fn,
        "expected_cost": threshold.cost,
    }
    frame = input_frame(X_sample, feature_names)
    decisions = np.zeros(len(frame), dtype=np.int64)
    signature = infer_signature(frame, decisions, params={"threshold": threshold.value})
    mlflow.set_tracking_uri(tracker.uri)
    with mlflow.start_run(run_id=tracker.parent_id):
        info = mlflow.pyfunc.log_model(
            name="decision_model",
            python_model=str(DECISION_MODEL),
            artifacts={"scorer": scorer_uri},
            model_config=config,
            signature=signature,
            input_example=frame,
            pip_requirements=pinned(objective.requirements) or None,
            metadata={**config, "chosen_by": "least expected cost on out-of-fold scores"},
            tags={TRIAL_TAG: str(trial_number)},
        )
    tracker.client.update_run(tracker.parent_id, status="RUNNING")
    return str(info.model_uri)
