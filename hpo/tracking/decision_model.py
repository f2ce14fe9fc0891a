"""A binary classifier's 0/1 decisions at the threshold chosen by cost (MLflow models from code).

Logged as ``decision_model`` beside ``best_model`` when ``evaluation.cost``
chose a threshold: ``best_model`` predicts the positive class's scores, this
one applies the threshold to them. MLflow copies this file into the model and
runs it on load, so loading needs mlflow, numpy and the scorer's own flavour,
not hpo. It takes what ``best_model`` takes, a DataFrame of the data's named
columns, and hands it on as it came. The threshold is in the model's config
and metadata, and a caller may pass another:
``model.predict(frame, params={"threshold": 0.3})``.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Decisions(PythonModel):
    """1 where the scorer's positive-class score reaches the threshold, else 0."""

    def load_context(self, context: Any) -> None:
        self.scorer = mlflow.pyfunc.load_model(context.artifacts["scorer"])
        self.threshold = float(context.model_config["threshold"])

    # A DataFrame hint: MLflow infers no input schema from it (the signature names the
    # columns) and hands over the frame it checked against the signature.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        threshold = float((params or {}).get("threshold", self.threshold))
        scores = np.asarray(self.scorer.predict(model_input), dtype=float)
        positive = scores.reshape(len(scores), -1)[:, -1]  # one score, or one per class
        return (positive >= threshold).astype(np.int64)


set_model(Decisions())
