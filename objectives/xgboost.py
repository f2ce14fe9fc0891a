"""XGBoost through its native API, with early stopping on an inner split of the training fold.

Stopping on the fold being scored would pick the number of rounds that
suits that fold and report an optimistic score; the inner split keeps the
scored fold unseen. The chosen number of rounds is returned as ``n_rounds``
and the final refit uses the folds' mean, scaled up for the larger data.

With ``report_every`` set, the study's metric on the inner split is reported
to the pruner every that many rounds, so a hopeless trial stops inside its
first fold instead of after it (the harness numbers the steps across folds).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.model_selection import train_test_split

from objectives.base import BadSetting, FoldData, FoldOutput, Objective, Reporter

TASKS = ("classification", "regression")


@dataclass
class XGBoostObjective(Objective):
    task: str = "classification"
    max_rounds: int = 500
    early_stopping_rounds: int = 25
    inner_valid_fraction: float = 0.2
    # Histogram bins per feature (XGBoost's default 256 when None). Fewer bins make each
    # round cheaper, usually at the same score (benchmarks/xgb_cost.py measures it).
    max_bin: int | None = None
    nthread: int = 0  # 0: the threads the CV harness gives each fold
    # Rounds between reports to the pruner (None: the harness prunes after whole folds).
    report_every: int | None = None
    flavor: str = "xgboost"
    requirements = ("xgboost-cpu",)
    fit_fact_names = ("n_rounds",)

    def validate(self, values: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Refuse a fixed setting XGBoost would fail on (or misread) in every trial."""

        def refuse(key: str, problem: str, fix: str) -> BadSetting:
            value = getattr(self, key)
            return BadSetting(f"study.objective.{key}={value!r} {problem}: {fix}")

        if self.task not in TASKS:
            raise refuse("task", f"is not one of {', '.join(TASKS)}", "use one of them")
        for key in ("max_rounds", "early_stopping_rounds"):
            if not _whole(getattr(self, key), 1):
                raise refuse(key, "is not a whole number >= 1", f"set study.objective.{key}=N")
        fraction = self.inner_valid_fraction
        if not (isinstance(fraction, numbers.Real) and 0 < fraction < 1):
            raise refuse(
                "inner_valid_fraction",
                "is not in (0, 1)",
                "set it to the share of each training fold to stop on, e.g. 0.2",
            )
        if self.max_bin is not None and not _whole(self.max_bin, 2):
            raise refuse(
                "max_bin", "is not a whole number >= 2", "set e.g. 64, or null for 256 bins"
            )
        if not _whole(self.nthread, 0):
            raise refuse(
                "nthread", "is not a whole number >= 0", "set N threads, or 0 for the harness's"
            )
        if self.report_every is not None and not _whole(self.report_every, 1):
            raise refuse(
                "report_every",
                "is not a whole number >= 1",
                "set the rounds between reports to the pruner, or null to prune after whole folds",
            )

    def max_steps(self, params: dict[str, Any]) -> int | None:
        """Reports per fold when ``report_every`` is set: one per that many rounds."""
        if not self.report_every:
            return None
        return -(-self.max_rounds // self.report_every)

    def booster_params(
        self, params: dict[str, Any], n_classes: int, seed: int, threads: int = 0
    ) -> dict[str, Any]:
        base: dict[str, Any] = {"tree_method": "hist", "seed": seed, "verbosity": 0}
        if self.max_bin:
            base["max_bin"] = self.max_bin
        if self.nthread or threads:
            base["nthread"] = self.nthread or threads
        if self.task == "regression":
            base |= {"objective": "reg:squarederror", "eval_metric": "rmse"}
        elif n_classes > 2:
            base |= {
                "objective": "multi:softprob",
                "eval_metric": "mlogloss",
                "num_class": n_classes,
            }
        else:
            base |= {"objective": "binary:logistic", "eval_metric": "logloss"}
        return base | params

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        stratify = fold.y_train if self.task == "classification" else None
        X_fit, X_stop, y_fit, y_stop = train_test_split(
            fold.X_train,
            fold.y_train,
            test_size=self.inner_valid_fraction,
            random_state=fold.seed,
            stratify=stratify,
        )
        dfit = xgb.DMatrix(X_fit, label=y_fit)
        dstop = xgb.DMatrix(X_stop, label=y_stop)
        history: dict[str, dict[str, list[float]]] = {}
        reports = None
        if report is not None and self.report_every and fold.metric is not None:
            reports = _ReportEveryRounds(report, self.report_every, dstop, y_stop, fold.metric)
        booster = xgb.train(
            self.booster_params(params, fold.n_classes, fold.seed, fold.threads),
            dfit,
            num_boost_round=self.max_rounds,
            evals=[(dstop, "stop")],
            early_stopping_rounds=self.early_stopping_rounds,
            evals_result=history,
            verbose_eval=False,
            callbacks=[_StopWhen(fold.stopped), *([reports] if reports else [])],
        )
        # Early stopping's best round; absent when boosting was stopped before it kept one.
        n_rounds = getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1) + 1
        if reports is not None:
            reports.finish(booster, self.max_steps(params) or 1)
        scores = booster.predict(xgb.DMatrix(fold.X_valid), iteration_range=(0, n_rounds))
        curve = next(iter(history["stop"].values()))
        return FoldOutput(scores, {"n_rounds": float(n_rounds)}, {"inner_valid_loss": curve})

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        fit_facts: dict[str, float],
        seed: int,
    ) -> xgb.Booster:
        rounds = round(fit_facts.get("n_rounds", self.max_rounds) / (1 - self.inner_valid_fraction))
        return xgb.train(
            self.booster_params(params, n_classes, seed),
            xgb.DMatrix(X, label=y),
            num_boost_round=max(rounds, 1),
            verbose_eval=False,
        )

    def predict(self, model: xgb.Booster, X: np.ndarray) -> np.ndarray:
        return model.predict(xgb.DMatrix(X))


def _whole(value: Any, least: int) -> bool:
    """A whole number (numpy's too, not a bool) of at least ``least``."""
    return (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= least
    )


class _StopWhen(xgb.callback.TrainingCallback):
    """Ends boosting once the harness says the trial is over (a fold beside this one was pruned)."""

    def __init__(self, stopped: Callable[[], bool]) -> None:
        super().__init__()
        self.stopped = stopped

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        return self.stopped()


class _ReportEveryRounds(xgb.callback.TrainingCallback):
    """Every ``every`` rounds, the study metric of the best model so far on the inner split.

    "Best so far" is the round early stopping would return (lowest inner loss),
    the same model the fold ends with, so a report means the same thing at
    every step. Round r is step ceil(r / every) - 1.
    """

    def __init__(
        self,
        report: Reporter,
        every: int,
        dstop: xgb.DMatrix,
        y_stop: np.ndarray,
        metric: Callable[[np.ndarray, np.ndarray], float],
    ) -> None:
        super().__init__()
        self.report, self.every, self.dstop, self.y_stop = report, every, dstop, y_stop
        self.metric = metric
        self.pruned = False
        self.last_step = -1
        self.scored: tuple[int, float] = (0, float("nan"))  # (rounds, value), kept between reports

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        rounds = epoch + 1
        if rounds % self.every:
            return False
        losses = next(iter(evals_log["stop"].values()))
        best = int(np.argmin(losses)) + 1
        return self._report(model, rounds // self.every - 1, best)

    def finish(self, booster: xgb.Booster, max_steps: int) -> None:
        """The last step's report: the model the fold returns, so every fold spans all steps."""
        if not self.pruned and self.last_step < max_steps - 1:
            best = getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1) + 1
            self._report(booster, max_steps - 1, best)

    def _report(self, model: xgb.Booster, step: int, rounds: int) -> bool:
        if self.scored[0] != rounds:
            scores = model.predict(self.dstop, iteration_range=(0, rounds))
            self.scored = (rounds, self.metric(self.y_stop, scores))
        self.last_step = step
        self.pruned = self.report(step, self.scored[1])
        return self.pruned
