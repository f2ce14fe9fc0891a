"""The end of a study: its summary, and on the parent run the plots, config and best model.

Run once per process that ran the study (the parent of ``workers=N``,
never its workers; each of several machines' workers), and safe to run
again or at the same moment: the best model is refit and logged only when
no model of the best trial is on the parent run yet, and of several logged
at once the oldest is kept, so a study has one current best model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from hpo import candidates, failpoints, report
from hpo import constraints as study_constraints
from hpo.config import Config, to_yaml
from hpo.errors import disk_full
from hpo.evaluation import Section, Threshold, page
from hpo.names import (
    BEST_TRIAL_TAG,
    BIAS_VARIANCE_TAG,
    CANDIDATES_CSV,
    CANDIDATES_HTML,
    CONFIG_ARTIFACT,
    CV_ATTR,
    CV_FIT_FACTS,
    DECISION_MODEL_URI_TAG,
    MODEL_TRIAL_TAG,
    MODEL_URI_TAG,
    PARETO_FRONT_TAG,
    REPORT_ARTIFACT,
    TIES_TAG,
)
from hpo.runner import described
from hpo.runner.plan import Plan
from hpo.runner.winner import (
    bbc,
    bias_variance,
    evaluation_sections,
    judged_threshold,
    rivals_tied,
)
from hpo.secrets import mask
from hpo.storages import storage_line
from hpo.tracking.spool import quiet

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker


def finish(
    cfg: Config,
    plan: Plan,
    study: optuna.Study,
    tracker: Tracker | None,
    status: str = "FINISHED",
) -> report.Summary:
    """Summary, plots, config and the refit best model on the parent run, which ends
    ``status`` (FAILED: the study stopped as its trials kept failing)."""
    summary = report.summarize(
        study, plan.spec.metric, [o.name for o in plan.further_objectives], plan.constraints
    )
    summary.where["optuna storage"] = storage_line(cfg.storage)
    best = (
        None
        if summary.best_number is None
        else study.get_trials(deepcopy=False)[summary.best_number]
    )
    new_model, logged = False, None
    if tracker is not None and best is not None:
        try:
            with quiet():
                new_model, logged = _model_wanted(tracker, best.number)
        except Exception as err:
            _away(err, tracker)
            tracker = None
    refit = best is not None and ((new_model and logged is None) or plan.test is not None)
    model = _refit(plan, best) if best is not None and refit else None
    if best is not None and not plan.further_objectives:
        summary.ties, summary.compared = rivals_tied(plan, study, best)
        if plan.bbc_boot:
            summary.bbc, summary.bbc_note = bbc(plan, study)
    test_scores = None
    if plan.test is not None and model is not None:
        test_scores = np.asarray(plan.objective.predict(model, plan.test.X))
        summary.test_value = plan.metric(plan.test.y, test_scores)
        summary.test_rows = len(plan.test.y)
    curves: list[Section] = []
    if best is not None and not plan.further_objectives:
        summary.threshold = judged_threshold(plan, best)
        summary.bias_variance, curves = bias_variance(plan, study, best)
    if tracker is None:
        return summary
    sections: list[Section] = [(f"The trials of {plan.spec.name}", report.figures(study, summary))]
    if best is not None and not plan.further_objectives:
        sections += evaluation_sections(plan, best, summary.threshold, test_scores) + curves
    texts = [(CONFIG_ARTIFACT, mask(to_yaml(cfg)))]
    if any(figures for _, figures in sections):
        texts.append((REPORT_ARTIFACT, page(f"Study {plan.spec.name}", sections)))
    texts += _candidates(plan, summary)
    try:
        with quiet():
            _on_parent_run(
                plan, summary, tracker, status, texts, best if new_model else None, model, logged
            )
    except Exception as err:
        _away(err, tracker)
        return summary
    look = tracker.ui_command(plan.spec.metric, plan.direction)
    summary.where["look"] = f"{look}  (MLflow's UI on experiment '{plan.spec.name}')"
    return summary


def _model_wanted(tracker: Tracker, best: int) -> tuple[bool, str | None]:
    """Whether the parent run needs the model of trial ``best`` (it has another, or none),
    and the URI of one already logged for it but not yet tagged."""
    if tracker.parent_tag(MODEL_TRIAL_TAG) == str(best):
        return False, None
    return True, _logged_model(tracker, best)


def _away(err: Exception, tracker: Tracker) -> None:
    """Tracking is unreachable at the end (else raise ``err``): the tracker's last line
    says what is missing and what to do.

    A local disk without room for the plots and model (an OSError, ENOSPC) is raised
    too: unlike a store that is away, nothing waits for it in the spool and it does
    not come back by itself, so the study stops with the summary and one line naming
    the full disk and the fix (hpo.runner.loop), its parent run closed, not RUNNING."""
    from hpo.tracking.writes import unreachable

    if not unreachable(err) or (isinstance(err, OSError) and disk_full(err)):
        raise err
    tracker.study_unfinished(err)


def _on_parent_run(
    plan: Plan,
    summary: report.Summary,
    tracker: Tracker,
    status: str,
    texts: list[tuple[str, str]],
    new_best: optuna.trial.FrozenTrial | None,
    model: Any,
    logged: str | None,
) -> None:
    """The parent run's pages (config, plots, evaluation), numbers and tags, its model
    (for ``new_best``), and its end."""
    metrics, tags = _best_facts(plan, summary)
    tracker.flush()
    tracker.log_study(metrics, tags, texts)
    if summary.best_number is not None:
        tracker.log_best_params(summary.best_number, summary.best_params)
    tracker.describe_study(described.description(plan, summary), described.runs_view(plan, summary))
    if new_best is not None:
        _log_model(plan, new_best, model, tracker, logged, summary.threshold)
    tracker.close_study(status)


def _candidates(plan: Plan, summary: report.Summary) -> list[tuple[str, str]]:
    """The candidates table (hpo/candidates.py) as the parent run's CSV and HTML artifacts."""
    if not summary.front:
        return []
    of = "feasible trials" if plan.constraints else "trials"
    note = f"The Pareto front of the study's {of}, best {plan.spec.metric} first"
    if plan.constraints:
        note += f"; constraints {study_constraints.describe(plan.constraints)}"
    note += f". The Pareto plot is in {REPORT_ARTIFACT}."
    title = f"Candidates of {plan.spec.name}"
    return [
        (CANDIDATES_CSV, candidates.csv_text(summary.front)),
        (CANDIDATES_HTML, candidates.html_text(summary.front, title, note)),
    ]


def _best_facts(plan: Plan, summary: report.Summary) -> tuple[dict[str, float], dict[str, str]]:
    """The parent run's metrics (counts, best value) and tags (best trial, its parameters)."""
    metrics: dict[str, float] = {f"n_{state.lower()}": n for state, n in summary.counts.items()}
    if summary.tally is not None:  # complete trials that missed a constraint
        metrics["n_infeasible"] = summary.tally.infeasible
    tags: dict[str, str] = {}
    if summary.best_value is not None:
        metrics[plan.spec.metric] = summary.best_value  # as on the best trial's run
        if summary.best_std is not None:
            metrics[f"{plan.spec.metric}_std"] = summary.best_std
        if summary.bbc is not None:  # corrected for the winner having been chosen
            name = f"bbc_{plan.spec.metric}"
            metrics |= {name: summary.bbc.value, f"{name}_low": summary.bbc.low}
            metrics[f"{name}_high"] = summary.bbc.high
        if summary.threshold is not None:  # chosen by cost on out-of-fold scores
            metrics["threshold"] = summary.threshold.value
            metrics["expected_cost"] = summary.threshold.cost
            metrics["expected_cost_at_half"] = summary.threshold.cost_at_half
        if summary.test_value is not None:  # the refit winner on the held-out rows
            metrics[f"test_{plan.spec.metric}"] = summary.test_value
        tags = {
            BEST_TRIAL_TAG: str(summary.best_number),
            **{f"best.{k}": str(v) for k, v in summary.best_params.items()},
        }
        if summary.bias_variance:
            tags[BIAS_VARIANCE_TAG] = summary.bias_variance[:5000]
        if summary.compared:  # the next best trials the winner cannot be told apart from
            tags[TIES_TAG] = ",".join(str(t) for t in summary.ties) or "none"
        if summary.front:
            tags[PARETO_FRONT_TAG] = ",".join(str(row["trial"]) for row in summary.front)
    return metrics, tags


def _refit(plan: Plan, best: optuna.trial.FrozenTrial) -> Any:
    """``best`` (the best trial, or the front's best by the study metric) refit on every
    tuning row; the held-out rows, if any, stay unseen."""
    data = plan.data
    return plan.objective.refit(
        best.params,
        data.X,
        data.y,
        data.n_classes,
        best.user_attrs.get(CV_ATTR, {}).get(CV_FIT_FACTS, {}),
        plan.seed,
    )


def _logged_model(tracker: Tracker, trial_number: int) -> str | None:
    """The URI of a best model of ``trial_number`` already on the parent run (logged by a
    run cut off before it tagged the parent, or by another process finishing the study)."""
    from hpo.tracking.models import best_models

    found = best_models(tracker, trial_number)
    return str(found[0].model_uri) if found else None


def _log_model(
    plan: Plan,
    best: optuna.trial.FrozenTrial,
    model: Any,
    tracker: Tracker,
    logged: str | None,
    threshold: Threshold | None = None,
) -> None:
    """Log the refit ``model`` of ``best`` on the parent run (unless ``logged`` already),
    keep one model of the trial, and remember it by the parent run's tags; with a
    threshold chosen by cost, also the model that applies it (``decision_model``)."""
    from hpo.tracking.models import keep_one, log_decision_model, log_model

    if logged is None:
        sample = plan.data.X[:5]
        logged = log_model(
            tracker,
            plan.objective,
            model,
            sample,
            np.asarray(plan.objective.predict(model, sample)),
            best.number,
            feature_names=plan.data.feature_names,
        )
    failpoints.reached("finish.model-logged")
    uri = keep_one(tracker, best.number) or logged
    tags = {MODEL_TRIAL_TAG: str(best.number), MODEL_URI_TAG: uri}
    if threshold is not None:
        sample = plan.data.X[:5]
        tags[DECISION_MODEL_URI_TAG] = log_decision_model(
            tracker,
            plan.objective,
            uri,
            threshold,
            sample,
            best.number,
            feature_names=plan.data.feature_names,
        )
    tracker.log_study({}, tags, [])
