"""The contract every objective implements, and nothing more.

An objective fits a model on the training part of one fold and returns
scores for the validation rows. It never sees the validation labels (the
harness in hpo/cv.py keeps them), never splits data, never computes the
study's metric and never logs: the harness and the tracker do that. Like a
scikit-learn estimator, ``__init__`` (a dataclass here) only stores settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# report(step, value) -> True when the trial should stop (the pruner said so).
# ``value`` is in the study metric's terms (same scale and direction), measured
# on the objective's own inner split, never on the fold being scored.
Reporter = Callable[[int, float], bool]
Score = Callable[[np.ndarray, np.ndarray], float]  # metric(y_true, scores)


class BadSetting(Exception):
    """A setting the user must fix (a fixed setting, a space value, a missing model folder).

    Raised by ``validate`` (or ``__init__``); the platform shows its message as one
    line and exits 2 before the first trial. It lives here, not in hpo, so that the
    contract depends on nothing that imports back.
    """


@dataclass
class FoldData:
    """One fold as the objective sees it: training rows with labels, validation rows without."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    n_classes: int
    seed: int
    threads: int = 1  # CPU threads this fit may use (folds may run side by side)
    # The study's metric, so that values reported per epoch on an inner split of
    # the training rows are comparable across trials and point the study's way.
    metric: Score | None = None
    # True once the trial is over while this fold still runs (a fold beside it was
    # pruned): stop as soon as possible, the scores will be thrown away.
    stopped: Callable[[], bool] = lambda: False


@dataclass
class FoldOutput:
    """Validation scores (probabilities or values) and facts about the fit (rounds, epochs).

    ``reference_scores``: the same rows' scores by the model before it was
    compressed (quantized, pruned), where keeping them is cheap. When every
    fold has them, the harness adds the metric uncompressed and its drop to
    the fit facts (``metric_uncompressed``, ``metric_drop``: hpo/cv.py).
    """

    scores: np.ndarray
    fit_facts: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    reference_scores: np.ndarray | None = None


class Objective(ABC):
    """A model family to tune.

    Attributes:
        task: "classification" or "regression"; decides the metrics and splitters.
        flavor: the MLflow model flavour the refit model is logged with. Its signature
            names the data's columns (``Dataset.feature_names``), so the logged model
            takes a DataFrame of them (doubles, or one string column of texts) where
            ``predict`` takes numpy rows. A ``pyfunc`` model is a ``PythonModel`` with
            ``artifacts()`` (the folders it loads from) and no type hints on its
            ``predict`` (MLflow would take them for the signature).
        requirements: the pip packages a logged model needs to load (names: the
            tracker pins the installed versions). A class attribute, not a setting;
            empty leaves MLflow to infer them, which loads the model in a subprocess.
        fit_fact_names: every name ``FoldOutput.fit_facts`` may hold, so that a study's
            further objectives (``study.objectives``) are checked before the first
            trial; empty: not declared, checked at the first fit.
    """

    task: str
    flavor: str
    requirements: tuple[str, ...] = ()
    fit_fact_names: tuple[str, ...] = ()

    @abstractmethod
    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        """Fit on ``fold.X_train``/``y_train`` and score ``fold.X_valid``."""

    def validate(self, values: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Refuse a setting the first trial would fail on, before it runs.

        Raise ``BadSetting`` naming the key (``study.objective.KEY``,
        or ``study.space.NAME`` for ``values``) and the fix. ``values`` maps each
        parameter of the study's space to values it can take (categorical
        choices, a range's ends, grid values), checked where the objective can.
        The default checks nothing.
        """
        return None

    def max_steps(self, params: dict[str, Any]) -> int | None:
        """The most steps ``report`` is called with in one fold (epochs), or None if never.

        The harness numbers fold i's step s as ``i * max_steps + s``, so a step
        means the same fold and epoch in every trial. An objective that reports
        must end each fold with a report at step ``max_steps - 1`` (early
        stopping: the value of the model it returns), so every fold spans the
        same steps and a pruner's resource is exactly n_folds * max_steps.
        """
        return None

    @abstractmethod
    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        fit_facts: dict[str, float],
        seed: int,
    ) -> Any:
        """Fit the final model on all data; ``fit_facts`` is the mean of the folds' fit facts."""

    @abstractmethod
    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        """Scores of a refit model, in the same form as ``fit_predict`` returns."""
