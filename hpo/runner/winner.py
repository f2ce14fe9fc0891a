"""The winner's honest numbers and its evaluation report, from what the trials kept.

BBC-CV corrects the best score for having been chosen; the corrected t-test
names the next best trials the winner cannot be told apart from; the report
(confusion matrix, ROC, precision-recall, calibration or the regression
plots, with the metric table) is drawn from the winner's out-of-fold scores
and, with held-out rows, from the refit winner's scores on them. A binary
task's threshold is chosen by cost on out-of-fold scores only.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna

from hpo.constraints import is_feasible
from hpo.estimates import Estimate, bbc_cv, indistinguishable
from hpo.evaluation import (
    Report,
    Section,
    Threshold,
    choose_threshold,
    classification_report,
    regression_report,
)
from hpo.evaluation.curves import bias_and_variance
from hpo.names import CV_ATTR, CV_FOLD_VALUES, OOF_ATTR
from hpo.runner.plan import Plan

RIVALS = 5  # next best trials the winner is tested against
CURVE_SECONDS = 60.0  # evaluation.curves=auto draws the curves when refits take about this
CURVE_FITS = 12  # per fold: up to 7 values along the knob and 5 shares of the rows


def oof_rows(plan: Plan) -> np.ndarray:
    """The rows a trial's kept out-of-fold scores are on, in their order."""
    return np.sort(np.concatenate([valid for _, valid in plan.folds]))


def judged_threshold(plan: Plan, best: optuna.trial.FrozenTrial) -> Threshold | None:
    """The least-cost threshold on the winner's out-of-fold scores (``evaluation.cost``);
    None without a cost, for a task that is not binary, or without kept scores."""
    oof = best.user_attrs.get(OOF_ATTR)
    if plan.cost is None or plan.data.task != "classification" or oof is None:
        return None
    scores = np.asarray(oof, dtype=float)
    if scores.ndim != 1:
        return None
    return choose_threshold(plan.data.y[oof_rows(plan)], scores, *plan.cost)


def evaluation_sections(
    plan: Plan,
    best: optuna.trial.FrozenTrial,
    threshold: Threshold | None,
    test_scores: Any = None,
) -> list[Section]:
    """The winner's evaluation, for the study's report: on its out-of-fold scores, and on
    the held-out rows (``test_scores``: the refit winner's), a section of figures each."""
    title = f"Trial {best.number}, the winner"
    sources = []
    if (oof := best.user_attrs.get(OOF_ATTR)) is not None:
        sources.append(("out-of-fold predictions", plan.data.y[oof_rows(plan)], oof))
    if plan.test is not None and test_scores is not None:
        sources.append(("held-out test rows", plan.test.y, test_scores))
    return [
        _report(plan, y, np.asarray(scores, dtype=float), threshold, source).section(
            f"{title}, on its {source}"
        )
        for source, y, scores in sources
    ]


def _report(
    plan: Plan, y: np.ndarray, scores: np.ndarray, threshold: Threshold | None, source: str
) -> Report:
    if plan.data.task != "classification":
        return regression_report(y, scores, source=source)
    cut: float | Threshold = threshold if threshold is not None else 0.5
    return classification_report(y, scores, threshold=cut, source=source)


def bbc(plan: Plan, study: optuna.Study) -> tuple[Estimate | None, str]:
    """BBC-CV over the complete trials' kept out-of-fold scores, or why there is none.

    Only the feasible ones: an infeasible trial could never have been chosen."""
    kept = [
        t.user_attrs[OOF_ATTR]
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if OOF_ATTR in t.user_attrs and is_feasible(t)
    ]
    rows = oof_rows(plan)
    kept = [k for k in kept if len(k) == len(rows)]
    if len(kept) < 2:
        return None, "fewer than two complete trials kept their out-of-fold scores"
    fold_of = np.empty(len(plan.data.y), dtype=int)
    for fold, (_, valid) in enumerate(plan.folds):
        fold_of[valid] = fold
    try:
        estimate = bbc_cv(
            np.asarray(kept, dtype=float),
            plan.data.y[rows],
            plan.metric,
            plan.direction == "maximize",
            n_boot=plan.bbc_boot,
            seed=plan.seed,
            folds=None if plan.leave_one_out or len(plan.folds) < 2 else fold_of[rows],
        )
    except ValueError as err:  # too few rows to score most bootstraps: it says why
        return None, str(err).splitlines()[0]
    return estimate, ""


def rivals_tied(
    plan: Plan, study: optuna.Study, best: optuna.trial.FrozenTrial
) -> tuple[list[int], int]:
    """The next best trials (up to ``RIVALS``) the winner cannot be told apart from on its
    folds, and how many were tested. None with one validation score (holdout, LOO)."""
    if len(plan.folds) < 2 or plan.leave_one_out:
        return [], 0

    def folds_of(trial: optuna.trial.FrozenTrial) -> list[float]:
        return list(trial.user_attrs.get(CV_ATTR, {}).get(CV_FOLD_VALUES, []))

    complete = [  # the feasible ones: an infeasible trial is no rival
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.number != best.number and len(folds_of(t)) == len(plan.folds) and is_feasible(t)
    ]
    sign = 1.0 if plan.direction == "maximize" else -1.0
    rivals = sorted(complete, key=lambda t: -sign * float(t.values[0]))[:RIVALS]
    n_test = round(float(np.mean([len(valid) for _, valid in plan.folds])))
    n_train = round(float(np.mean([len(train) for train, _ in plan.folds])))
    others = {t.number: folds_of(t) for t in rivals}
    return indistinguishable(folds_of(best), others, n_train, n_test), len(rivals)


def bias_variance(
    plan: Plan, study: optuna.Study, best: optuna.trial.FrozenTrial
) -> tuple[str, list[Section]]:
    """The winner's bias/variance verdict and its curves (a section of the study's report),
    or why there are none.

    The curves refit the winner about a dozen times per fold, so under
    ``evaluation.curves=auto`` they are drawn only when the study's trials say
    that takes a minute or less; the line then says how to ask for them.
    """
    if plan.curves == "off":
        return "", []
    if plan.leave_one_out:
        return "no curves under leave-one-out (each fold scores one row)", []
    if plan.curves == "auto":
        seconds = CURVE_FITS * _trial_seconds(study)
        if seconds > CURVE_SECONDS:
            return f"not drawn: about {seconds:.0f} s of refits (evaluation.curves=true)", []
    space = {p.name: p for p in plan.space.params}
    found = bias_and_variance(
        plan.objective, dict(best.params), plan.cv_setup, space, _importances(study)
    )
    where = f"{len(plan.folds)} folds of {len(plan.data.y)} tuning rows"
    figures = found.figures(plan.spec.metric, where)
    return found.verdict, [Report({}, figures).section(f"Trial {best.number}: bias and variance")]


def _trial_seconds(study: optuna.Study) -> float:
    """The median wall time of a complete trial: all its folds, as the curves fit them."""
    done = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.datetime_start is not None and t.datetime_complete is not None
    ]
    return float(np.median(done)) if done else 0.0


def _importances(study: optuna.Study) -> dict[str, float] | None:
    """Optuna's parameter importances, to choose the knob; None when they cannot be had."""
    try:
        with warnings.catch_warnings():  # "importances will be equal" among few trials: fine
            warnings.simplefilter("ignore", UserWarning)
            return dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError):  # too few trials, or one value per parameter
        return None
