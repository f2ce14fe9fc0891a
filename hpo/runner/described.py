"""What MLflow's UI says about a study: its description and the view of its runs table.

A finished study is read in MLflow's UI more than in the terminal. Without
these the UI opens on a table with no metric or parameter column (57 to pick
from) and a parent run with no word of what was tuned. Both are plain MLflow
features written as tags: ``mlflow.note.content`` is the markdown description
of a run or an experiment, and an experiment tag ``mlflow.sharedViewState.KEY``
holds a runs-table view (its columns and order) that the URL
``#/experiments/ID/runs?viewStateShareKey=KEY`` opens, as MLflow's own Share
button does (hpo/ui prints that URL).
"""

from __future__ import annotations

import json
from typing import Any

from hpo.constraints import describe
from hpo.names import CANDIDATES_HTML, FEASIBLE_TAG, REPORT_ARTIFACT, STATE_TAG
from hpo.report import Summary, fmt
from hpo.runner.plan import Plan


def column(kind: str, name: str) -> str:
    """A runs-table column as MLflow's UI names it: ``metrics.`f1```, ``params.`eta```."""
    return f"{kind}.`{name}`"


def runs_view(plan: Plan, summary: Summary) -> str:
    """The runs table a study opens on (JSON): the study metric, its spread over folds,
    each trial's state (a pruned trial reads PRUNED) and every tuned parameter,
    best trial first."""
    metric = plan.spec.metric
    columns = [
        column("metrics", metric),
        column("metrics", f"{metric}_std"),
        column("tags", STATE_TAG),
        *(column("params", name) for name in plan.space.distributions()),
        column("attributes", "Models"),
    ]
    view: dict[str, Any] = {
        "orderByKey": column("metrics", metric),
        "orderByAsc": plan.direction == "minimize",
        "selectedColumns": columns,
    }
    if summary.extra:  # a Pareto front: the further objectives too
        view["selectedColumns"][2:2] = [column("metrics", name) for name in summary.extra]
    if plan.constraints:  # met or not, then each constrained fact
        at = view["selectedColumns"].index(column("tags", STATE_TAG)) + 1
        facts = [column("metrics", c.name) for c in plan.constraints if c.name not in summary.extra]
        view["selectedColumns"][at:at] = [column("tags", FEASIBLE_TAG), *facts]
    return json.dumps(view)


def description(plan: Plan, summary: Summary) -> str:
    """A few lines of markdown for the parent run and the experiment: what was tuned, on
    what, the best result and where the plots and model are."""
    data, metric = plan.data, plan.spec.metric
    shape = f"{len(data.y)} rows" + (f", {data.X.shape[1]} features" if data.X.ndim > 1 else "")
    counts = ", ".join(f"{n} {state.lower()}" for state, n in summary.counts.items())
    lines = [
        f"**{plan.spec.name}**: {type(plan.objective).__name__} tuned for **{metric}** "
        f"({plan.direction}) on `{data.name}` ({shape}), {_cv(plan)}, "
        f"sampler {plan.sampler_kind}. Trials: {counts}.",
        "",
    ]
    if summary.tally is not None:
        t = summary.tally
        lines.append(
            f"Constraints `{describe(plan.constraints)}`: {t.infeasible} of {t.judged} complete "
            f"trials infeasible (tag `{FEASIBLE_TAG}`), never chosen."
        )
    if summary.best_value is None:
        judged = summary.tally is not None and summary.tally.judged
        lines.append("No trial met the constraints." if judged else "No trial has completed yet.")
        return "\n".join(lines)
    spread = f" ± {summary.best_std:.4f} over folds" if summary.best_std is not None else ""
    best = f"**{summary.best_value:.4f}**{spread} (trial {summary.best_number})"
    lines.append(f"Best {'feasible ' if plan.constraints else ''}{metric}: {best}.")
    if summary.bbc is not None:
        lines.append(f"Corrected for being chosen: {summary.bbc.line(metric)}.")
    if summary.test_value is not None:
        test = f"{summary.test_value:.4f} ({summary.test_rows} rows)"
        lines.append(f"Held-out test {metric}: {test}.")
    params = ", ".join(f"`{k}` {fmt(v)}" for k, v in summary.best_params.items())
    lines += [
        f"Best parameters: {params}.",
        "",
        f"Plots: `{REPORT_ARTIFACT}` in this run's artifacts. Model: `best_model` "
        "(tag `hpo.model_uri`). One child run per trial; a pruned trial is "
        "`trial-NNNN-pruned`, state `PRUNED`.",
    ]
    if summary.front:
        lines[-1] += f" Candidates (the Pareto front): `{CANDIDATES_HTML}`."
    return "\n".join(lines)


def _cv(plan: Plan) -> str:
    if plan.cv is None:
        return f"{len(plan.folds)} folds"
    return f"{plan.cv.scheme} CV, {len(plan.folds)} folds"
