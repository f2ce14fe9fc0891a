"""Champion/challenger: the night's best model replaces the registered champion only if better.

How "better" is measured without a leak: the champion's model was refit on
all of its night's data, so scoring it on tonight's folds would score it on
rows it was trained on. Instead the champion's parameters (kept on its model
version) are cross-validated again on tonight's data and tonight's folds,
exactly as tonight's trials were, and paired fold by fold with the
challenger's fold values. The challenger is promoted when the mean paired
gain (in the metric's direction) is positive, at least
``schedule.min_improvement``, and significant: the corrected resampled t-test
(Nadeau and Bengio, as the summary's "cannot be told apart" line uses) gives
a one-sided p below ``schedule.alpha`` (default 0.05; 1 turns the test off).
With one fold (holdout) there is no spread to test: the gain alone decides.
The first night promotes its winner.

The challenger is the best of many trials on these folds, so its fold values
lean optimistic (the winner's curse); the test and ``min_improvement`` are
the margins that absorb it: a night that is only luckier is kept.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import optuna
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo import failpoints
from hpo.constraints import best_trial
from hpo.cv import cross_validate
from hpo.estimates import corrected_t_test
from hpo.names import (
    CHALLENGED_PREFIX,
    CHAMPION_PREFIX,
    DECISION_TAG,
    MODEL_TRIAL_TAG,
    MODEL_URI_TAG,
    NIGHT_TAG,
    PARAMS_TAG,
    PARENT_ATTR,
    TRIAL_TAG,
    VALUE_TAG,
)
from hpo.runner import CV_ATTR, Plan

log = logging.getLogger(__name__)


@dataclass
class Decision:
    """What the night decided, with the figures it decided on."""

    outcome: str  # first, promoted, kept
    trial: int  # tonight's best trial
    version: str  # tonight's model version
    challenger_value: float  # mean over tonight's folds
    n_folds: int
    min_improvement: float
    alpha: float = 1.0  # the one-sided p a gain needs (schedule.alpha)
    champion_value: float | None = None  # the champion's parameters, same folds
    diff_mean: float | None = None  # per-fold gain of the challenger, > 0 is better
    diff_std: float | None = None
    p_value: float | None = None  # one-sided, corrected resampled t-test of the gains
    champion_version: str | None = None
    champion_run: str | None = None

    @property
    def promoted(self) -> bool:
        return self.outcome in ("first", "promoted")

    def line(self) -> str:
        head = f"version {self.version} {'promoted to' if self.promoted else 'not'} champion"
        if self.outcome == "first":
            return f"{head} (first night: challenger {self.challenger_value:.4f})"
        return (
            f"{head}: challenger {self.challenger_value:.4f} vs champion (version "
            f"{self.champion_version}) {self.champion_value:.4f} on the same {self.n_folds} folds, "
            f"mean paired gain {self.diff_mean:+.4f} ± {self.diff_std:.4f}{self._p()} "
            f"(needs > 0 and >= {self.min_improvement:g}{self._needs()})"
        )

    def _p(self) -> str:
        return "" if self.p_value is None else f", p {self.p_value:.3g}"

    def _needs(self) -> str:
        return "" if self.p_value is None or self.alpha >= 1 else f", p < {self.alpha:g}"

    def tags(self) -> dict[str, str]:
        """``hpo.champion.*`` tags: the outcome is ``hpo.champion.decision``."""
        figures = {k: v for k, v in asdict(self).items() if v is not None and k != "outcome"}
        tags = {CHAMPION_PREFIX + k: str(v) for k, v in figures.items()}
        return {
            **tags,
            CHAMPION_PREFIX + "decision": self.outcome,
            CHAMPION_PREFIX + "summary": self.line(),
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Decision:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = tags.get(CHAMPION_PREFIX + ("decision" if f.name == "outcome" else f.name))
            if raw is None:
                continue
            kind = str(f.type)
            values[f.name] = float(raw) if "float" in kind else int(raw) if kind == "int" else raw
        return cls(**values)


def challenge(
    plan: Plan,
    study: optuna.Study,
    client: MlflowClient,
    model_name: str,
    alias: str,
    min_improvement: float,
    version_tags: dict[str, str],
    alpha: float = 0.05,
) -> Decision:
    """Register tonight's best model and give it ``alias`` if it beats the current holder.

    Idempotent: a rerun of the night with the same best trial returns the
    decision already recorded on the parent run.
    """
    # the trial whose model the study refit: its best feasible (a Pareto study's front's best)
    best = best_trial(study)
    if best is None:
        raise RuntimeError(f"study {study.study_name} has no feasible complete trial to register")
    parent_id = study.user_attrs[PARENT_ATTR]
    parent = client.get_run(parent_id).data.tags
    if parent.get(CHAMPION_PREFIX + "trial") == str(best.number):
        decision = Decision.from_tags(parent)
        if decision.promoted:  # the alias is set last: a night cut off just before it sets it now
            _promote(client, model_name, alias, decision.version)
        return decision
    if parent.get(MODEL_TRIAL_TAG) != str(best.number):
        raise RuntimeError(f"the parent run has no refit model of trial {best.number}")
    folds = [float(v) for v in best.user_attrs[CV_ATTR]["fold_values"]]
    value = float(np.mean(folds))
    decision = Decision("first", best.number, "", value, len(folds), min_improvement, alpha)
    _ensure_model(client, model_name)
    champion = _holder(client, model_name, alias)
    if champion is not None:
        _compare(plan, champion, folds, decision)
    version = _registered(
        client, model_name, parent_id, best.number
    ) or client.create_model_version(
        model_name,
        source=parent[MODEL_URI_TAG],
        run_id=parent_id,
        model_id=_model_id(parent[MODEL_URI_TAG]),
        tags={
            **version_tags,
            TRIAL_TAG: str(best.number),
            PARAMS_TAG: json.dumps(best.params, sort_keys=True),
            VALUE_TAG: repr(decision.challenger_value),
        },
    )
    failpoints.reached("night.registered")
    decision.version = str(version.version)
    client.set_model_version_tag(model_name, version.version, DECISION_TAG, decision.outcome)
    client.set_registered_model_alias(model_name, "challenger", version.version)
    _record(client, parent_id, decision, version_tags.get(NIGHT_TAG, ""))
    failpoints.reached("night.recorded")
    if decision.promoted:  # last: a night that fails before here leaves the champion as it was
        _promote(client, model_name, alias, decision.version)
    log.info("%s: %s", model_name, decision.line())
    return decision


def _registered(
    client: MlflowClient, model_name: str, run_id: str, trial: int
) -> ModelVersion | None:
    """The version an earlier, interrupted try of this night registered for the same trial."""
    for version in client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'"):
        if version.tags.get(TRIAL_TAG) == str(trial):
            return version
    return None


def _promote(client: MlflowClient, model_name: str, alias: str, version: str) -> None:
    """Give ``alias`` to ``version`` unless a later night's version already holds it."""
    holder = _holder(client, model_name, alias)
    if holder is None or int(holder.version) <= int(version):
        client.set_registered_model_alias(model_name, alias, version)


def _compare(plan: Plan, champion: ModelVersion, folds: list[float], decision: Decision) -> None:
    """Score the champion's parameters on tonight's folds and pair them with the challenger's."""
    raw = champion.tags.get(PARAMS_TAG)
    if raw is None:
        raise RuntimeError(
            f"champion version {champion.version} has no '{PARAMS_TAG}' tag (not registered by "
            "hpo?): set it to the model's parameters as JSON, or move the alias off it"
        )
    params = json.loads(raw)
    result = cross_validate(plan.objective, params, plan.cv_setup)
    if len(result.fold_values) != len(folds) or not math.isfinite(result.value):
        raise RuntimeError(
            f"re-scoring champion version {champion.version} gave {result.fold_values}"
        )
    sign = 1.0 if plan.direction == "maximize" else -1.0
    gains = sign * (np.asarray(folds) - np.asarray(result.fold_values))
    decision.champion_value = float(result.value)
    decision.diff_mean = float(gains.mean())
    decision.diff_std = float(gains.std(ddof=1)) if len(gains) > 1 else 0.0
    decision.champion_version = str(champion.version)
    decision.champion_run = champion.run_id
    better = decision.diff_mean > 0 and decision.diff_mean >= decision.min_improvement
    if len(gains) > 1:  # one fold: no spread to test, the gain alone decides
        decision.p_value = one_sided_p(gains.tolist(), *fold_sizes(plan))
        better = better and decision.p_value < decision.alpha
    decision.outcome = "promoted" if better else "kept"


def fold_sizes(plan: Plan) -> tuple[int, int]:
    """(training rows, validation rows) per fold, the means over the study's folds."""
    n_train = round(float(np.mean([len(train) for train, _ in plan.folds])))
    n_test = round(float(np.mean([len(valid) for _, valid in plan.folds])))
    return n_train, n_test


def one_sided_p(gains: list[float], n_train: int, n_test: int) -> float:
    """p of "the challenger is better" from its paired fold gains (> 0: better), by the
    corrected resampled t-test: half the two-sided p when the mean gain is positive."""
    test = corrected_t_test(gains, [0.0] * len(gains), n_train, n_test)
    return test.p_value / 2 if test.mean_diff > 0 else 1 - test.p_value / 2


def _record(client: MlflowClient, parent_id: str, decision: Decision, night: str) -> None:
    """The decision on tonight's parent run, and one line on the champion's run."""
    for key, value in decision.tags().items():
        client.set_tag(parent_id, key, value)
    if decision.champion_run:
        try:
            client.set_tag(decision.champion_run, CHALLENGED_PREFIX + night, decision.line())
        except MlflowException as err:  # its run was deleted; the registry still holds the model
            log.warning("could not tag the champion's run %s: %s", decision.champion_run, err)


def _ensure_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(
            name, description="The champion of hpo's nightly study: see alias 'champion'."
        )
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def _holder(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _model_id(uri: str) -> str | None:
    """MLflow 3 logged models are ``models:/<model_id>``."""
    return uri.removeprefix("models:/") if uri.startswith("models:/m-") else None
