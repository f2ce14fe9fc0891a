"""The candidates table: the feasible trials no other trial beats on every count.

A team choosing a model weighs the metric against what serving it costs
(latency, size, memory) and keeps one within its budget. At the end of a study
with several objectives or with constraints, the candidates are the Pareto
front of its feasible trials: of a multi-objective study, its own front; of a
single-objective study with constraints, the front of the study metric against
the constrained facts (each a cap to go low on, a floor-only fact to go high
on). Each row has the metric, the further objectives, the constrained facts
and the cost facts the objective reports; the summary prints it and the parent
run keeps it as candidates.csv and candidates.html, beside a Pareto plot where
infeasible trials are drawn apart (Optuna's, from the trials' constraints).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from typing import Any, Literal

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo import constraints as study_constraints
from hpo.config import Constraint
from hpo.names import CV_ATTR, CV_FIT_FACTS

# Fit facts of what serving a model costs (objectives/mlp.py's compression knobs): a column
# wherever a candidate reports them.
COST_FACTS = ("latency_ms_b1", "latency_ms_b64", "model_kb", "inference_peak_kb", "metric_drop")


def front_study(study: optuna.Study, constraints: Sequence[Constraint]) -> optuna.Study | None:
    """The study whose Pareto front is the candidates: a multi-objective study itself; for a
    single objective with constraints, an in-memory copy whose objectives are the metric and
    the constrained facts; None otherwise (one objective, no constraints: one best).

    The copy keeps every trial's number (trials it cannot place are FAIL placeholders),
    parameters and constraints, so its plot and front name the study's own trials.
    """
    if len(study.directions) > 1:
        return study
    if not constraints:
        return None
    directions: list[StudyDirection | Literal["maximize", "minimize"]] = [study.direction]
    directions += [study_constraints.direction(c) for c in constraints]
    view = optuna.create_study(directions=directions)
    copies = []
    for trial in study.get_trials(deepcopy=False):  # in number order: numbers carry over
        values = _values(trial, constraints)
        if values is None:
            copies.append(create_trial(state=TrialState.FAIL))
            continue
        copies.append(
            create_trial(
                values=values,
                params=trial.params,
                distributions=trial.distributions,
                constraints=trial.constraints or None,
            )
        )
    view.add_trials(copies)
    return view


def _values(trial: FrozenTrial, constraints: Sequence[Constraint]) -> list[float] | None:
    """The metric, then each constrained fact; None for a trial not complete or missing one."""
    if trial.state != TrialState.COMPLETE or not trial.values:
        return None
    facts = fit_facts(trial)
    if not all(c.name in facts for c in constraints):
        return None
    return [float(trial.values[0]), *(float(facts[c.name]) for c in constraints)]


def fit_facts(trial: FrozenTrial) -> dict[str, float]:
    """The trial's fit facts, mean over folds, as its CV stored them."""
    return dict(trial.user_attrs.get(CV_ATTR, {}).get(CV_FIT_FACTS, {}))


def rows(
    study: optuna.Study, metric: str, extra: Sequence[str], constraints: Sequence[Constraint]
) -> list[dict[str, Any]]:
    """The candidates, best study metric first: trial, metric, further objectives, then the
    constrained and cost facts any candidate reports. Empty when there is no front (one
    objective without constraints) or no feasible trial."""
    view = front_study(study, constraints)
    if view is None:
        return []
    reverse = view.directions[0] == StudyDirection.MAXIMIZE
    front = sorted(view.best_trials, key=lambda t: t.values[0], reverse=reverse)
    trials = study.get_trials(deepcopy=False)
    chosen = [trials[t.number] for t in front]
    facts = {t.number: fit_facts(t) for t in chosen}
    named = [*extra, *(c.name for c in constraints), *COST_FACTS]
    columns = [n for n in dict.fromkeys(named) if n != metric]
    columns = [n for n in columns if n in extra or any(n in f for f in facts.values())]
    out = []
    for trial in chosen:
        row: dict[str, Any] = {"trial": trial.number, metric: float(trial.values[0])}
        for i, name in enumerate(extra, start=1):
            row[name] = float(trial.values[i])
        for name in columns:
            if name not in row:
                row[name] = facts[trial.number].get(name)
        out.append(row)
    return out


def csv_text(candidates: Sequence[dict[str, Any]]) -> str:
    """The candidates as CSV, a header of the columns (an empty cell: a fact not reported)."""
    buffer = io.StringIO()
    if candidates:
        writer = csv.DictWriter(buffer, fieldnames=list(candidates[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(candidates)
    return buffer.getvalue()


def html_text(candidates: Sequence[dict[str, Any]], title: str, note: str) -> str:
    """The candidates as a standalone HTML table (MLflow's artifact viewer shows it)."""
    header = "".join(f"<th>{html.escape(str(k))}</th>" for k in candidates[0]) if candidates else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row.values()) + "</tr>"
        for row in candidates
    )
    style = (
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body style='font-family: sans-serif'>"
        f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>"
        f"<table><tr>{header}</tr>{body}</table></body></html>"
    )


def cell(value: Any) -> str:
    """A table cell: four significant digits, whole counts as they are, '' for none."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def lines(candidates: Sequence[dict[str, Any]]) -> list[str]:
    """The candidates as an aligned text table, for the summary."""
    if not candidates:
        return []
    table = [list(candidates[0]), *([cell(v) for v in row.values()] for row in candidates)]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    return [
        "  ".join(f"{c!s:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]


def figure(study: optuna.Study, metric: str, constraints: Sequence[Constraint]) -> Any | None:
    """For a single-objective study with constraints: the Pareto plot of the metric against
    the (first two) constrained facts, feasible front, feasible and infeasible trials apart.
    (A multi-objective study's own plot is hpo.pareto's.) None when there is none to draw."""
    view = front_study(study, constraints)
    if view is None or view is study:
        return None
    names = [metric, *(c.name for c in constraints)][:3]
    targets = None if len(names) == len(view.directions) else (lambda t: t.values[:3])
    from optuna.visualization import plot_pareto_front

    fig = plot_pareto_front(view, target_names=names, targets=targets)
    fig.update_layout(title=f"Candidates: {metric} against {', '.join(names[1:])}")
    return fig
