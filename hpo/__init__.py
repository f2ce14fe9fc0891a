"""hpo: named hyperparameter studies on Optuna, scored by cross-validation, tracked in MLflow."""

__version__ = "0.1.0"
