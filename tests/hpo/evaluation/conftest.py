"""Shared by the hpo.evaluation tests: out-of-fold predictions of small sklearn models.

Package scope: each set is predicted once for the whole folder.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="package")
def binary() -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold P(class 1) of a logistic regression on breast cancer (569 rows)."""
    data = load_breast_cancer()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05))
    p = cross_val_predict(model, data.data, data.target, cv=5, method="predict_proba")
    return data.target, p[:, 1]


@pytest.fixture(scope="package")
def three_classes() -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (n, 3) probabilities on a 3-class synthetic set (300 rows)."""
    X, y = make_classification(
        300, n_features=6, n_informative=4, n_classes=3, n_clusters_per_class=1, random_state=0
    )
    return y, cross_val_predict(LogisticRegression(), X, y, cv=5, method="predict_proba")


@pytest.fixture(scope="package")
def regression() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(200, n_features=5, noise=20.0, random_state=0)
    return y, cross_val_predict(Ridge(), X, y, cv=5)
