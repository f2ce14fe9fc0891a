"""The refit best model on the parent run: its MLflow flavour, signature and pip requirements.

The objective names both the flavour (``Objective.flavor``) and the packages
its model needs (``Objective.requirements``): nothing here knows a model
family, and a new objective needs no change here.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModel, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature

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


def log_model(
    tracker: Tracker,
    objective: Objective,
    model: Any,
    X_sample: Any,
    y_sample: Any,
    trial_number: int,
) -> str:
    """Log ``objective``'s refit ``model`` on the parent run with its flavour and a signature.

    The pip requirements are the objective's, pinned to the installed
    versions; an objective that names none leaves MLflow to infer them
    (slow: MLflow loads the model in a subprocess to see what it imports).
    """
    assert tracker.parent_id is not None
    flavor = objective.flavor
    args: tuple[Any, ...] = (model,)
    extra: dict[str, Any] = {}
    if getattr(getattr(X_sample, "dtype", None), "kind", "") == "O":
        X_sample = [str(x) for x in X_sample]  # texts: a list gives a string column
    signature: ModelSignature | None = None  # a PythonModel: MLflow reads predict's type hints
    if flavor == "pyfunc":  # a PythonModel: its artifacts (folders) travel beside the pickle
        args, extra = (), {"python_model": model, "artifacts": model.artifacts()}
    else:
        signature = infer_signature(X_sample, y_sample)
    requirements = pinned(objective.requirements)
    module = importlib.import_module(f"mlflow.{flavor}")
    # The flavours log through MLflow's fluent API, which reads the process-wide URI; this
    # process tracks to one store only, and models:/ URIs (the registry, pyfunc loading)
    # resolve through the same setting afterwards.
    mlflow.set_tracking_uri(tracker.uri)
    with mlflow.start_run(run_id=tracker.parent_id):
        info = module.log_model(
            *args,
            name="best_model",
            signature=signature,
            input_example=X_sample,  # mlflow.pytorch's pt2 format traces the model on it
            pip_requirements=requirements or None,
            tags={TRIAL_TAG: str(trial_number)},
            **extra,
        )
    tracker.client.update_run(tracker.parent_id, status="RUNNING")
    return str(info.model_uri)


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
    X_sample: Any,
    trial_number: int,
) -> str:
    """Log ``decision_model`` on the parent run: the scorer at ``scorer_uri`` (the best
    model) with the cost-chosen ``threshold`` applied, so that serving it gives 0/1."""
    assert tracker.parent_id is not None
    config = {
        "threshold": threshold.value,
        "cost_fp": threshold.cost_fp,
        "cost_fn": threshold.cost_fn,
        "expected_cost": threshold.cost,
    }
    decisions = np.zeros(len(X_sample), dtype=np.int64)
    signature = infer_signature(X_sample, decisions, params={"threshold": threshold.value})
    mlflow.set_tracking_uri(tracker.uri)
    with mlflow.start_run(run_id=tracker.parent_id):
        info = mlflow.pyfunc.log_model(
            name="decision_model",
            python_model=str(DECISION_MODEL),
            artifacts={"scorer": scorer_uri},
            model_config=config,
            signature=signature,
            input_example=X_sample,
            pip_requirements=pinned(objective.requirements) or None,
            metadata={**config, "chosen_by": "least expected cost on out-of-fold scores"},
            tags={TRIAL_TAG: str(trial_number)},
        )
    tracker.client.update_run(tracker.parent_id, status="RUNNING")
    return str(info.model_uri)
