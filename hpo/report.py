"""What a study shows at its end: plots for MLflow and a summary for the terminal."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import candidates, pareto
from hpo import constraints as study_constraints
from hpo.config import Constraint
from hpo.names import CV_ATTR, CV_FIT_FACTS, CV_FOLD_VALUES, CV_STD

if TYPE_CHECKING:
    from hpo.estimates import Estimate
    from hpo.evaluation import Threshold
    from hpo.evaluation.nested import NestedResult

log = logging.getLogger(__name__)

# optuna.visualization.plot_<name>, looked up when plotting: importing it pulls in
# matplotlib (0.4 s), which every worker would pay at start-up for plots it never draws.
# What early stopping chose in the best trial (mean over folds), shown in the summary:
FITTED = ("n_rounds", "best_epoch", "epochs_run")  # boosting rounds kept; epochs
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "slice")


def _plots() -> dict[str, Callable[[optuna.Study], Any]]:
    import optuna.visualization as vis

    return {name: getattr(vis, f"plot_{name}") for name in PLOTS}


@dataclass
class Summary:
    study_name: str
    metric: str
    direction: str
    counts: dict[str, int]
    best_number: int | None = None
    best_value: float | None = None
    best_std: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_fit: dict[str, float] = field(default_factory=dict)  # FITTED facts, mean over folds
    where: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)  # further objectives (hpo/pareto.py)
    # the candidates (hpo/candidates.py): the Pareto front of the feasible trials, best first
    front: list[dict[str, Any]] = field(default_factory=list)
    constraints: tuple[Constraint, ...] = ()  # study.constraints (hpo/constraints.py)
    tally: study_constraints.Tally | None = None  # how the complete trials met them
    test_value: float | None = None  # the refit winner on the held-out rows
    ties: list[int] = field(default_factory=list)  # next best trials the winner ties with
    compared: int = 0  # how many next best trials were tested against the winner
    test_rows: int = 0
    bbc: Estimate | None = None  # BBC-CV: the winner's score corrected for being chosen
    bbc_note: str = ""  # why there is no BBC-CV estimate, where one was asked for
    threshold: Threshold | None = None  # a binary task's, chosen by cost (evaluation.cost)
    bias_variance: str = ""  # the verdict of the winner's curves, or why there are none
    nested: NestedResult | None = None  # nested CV of the whole procedure (evaluation.nested)

    def text(self) -> str:
        counts = ", ".join(f"{n} {s.lower()}" for s, n in self.counts.items())
        lines = [f"study {self.study_name}: {counts}"]
        lines += self._constraint_lines()
        if self.best_value is None and self.tally is not None and self.tally.judged:
            lines.append(
                f"  no trial met the constraints ({self._most_failed()}), so no best "
                f"{self.metric} and no model refit"
            )
        elif self.best_value is None:
            lines.append(f"  no completed trial yet, so no best {self.metric}")
        else:
            if self.best_std is not None:
                spread, said = f" ± {self.best_std:.4f}", "std over folds"
            else:  # holdout, leave-one-out: one value, no spread to show
                spread, said = "", "one validation score"
            best = "best feasible" if self.constraints else "best"
            lines.append(
                f"  {best} {self.metric} ({self.direction}): {self.best_value:.4f}{spread}"
                f" (trial {self.best_number}, {said})"
            )
            if self.bbc is not None:
                lines.append(
                    f"  {self.bbc.line(self.metric)}: the winner's score corrected for "
                    "having been chosen"
                )
            elif self.bbc_note:
                lines.append(f"  no BBC-CV estimate: {self.bbc_note}")
            if self.compared:
                lines.append(
                    f"  {_ties(self.ties, self.compared)} (corrected resampled t-test on the "
                    "fold scores, p >= 0.05)"
                )
            if self.threshold is not None:
                t = self.threshold
                lines.append(
                    f"  threshold {t.value:.4g} by cost (fp {t.cost_fp:g}, fn {t.cost_fn:g}) on "
                    f"out-of-fold scores: expected cost {t.cost:.4g} a row "
                    f"({t.cost_at_half:.4g} at 0.5)"
                )
            if self.bias_variance:
                lines.append(f"  bias/variance: {self.bias_variance}")
            if self.test_value is not None:
                lines.append(
                    f"  test {self.metric}: {self.test_value:.4f} "
                    f"(the refit winner on {self.test_rows} held-out rows no trial saw)"
                )
            width = max(len(k) for k in self.best_params) if self.best_params else 0
            lines += [f"    {k:<{width}}  {fmt(v)}" for k, v in self.best_params.items()]
            if self.best_fit:
                fitted = ", ".join(f"{k} {v:.4g}" for k, v in self.best_fit.items())
                lines.append(f"  its fit, mean over folds: {fitted}")
        if self.nested is not None:
            lines += [f"  {line}" for line in self.nested.lines()]
        if self.front:
            of = "the feasible trials" if self.constraints else "the trials"
            lines.append(
                f"  candidates, the Pareto front of {of} ({len(self.front)}; best "
                f"{self.metric} first):"
            )
            lines += [f"    {line}" for line in candidates.lines(self.front)]
        lines += [f"  {k}: {v}" for k, v in self.where.items()]
        return "\n".join(lines)

    def _constraint_lines(self) -> list[str]:
        """What the constraints were, and how many complete trials missed them."""
        if not self.constraints:
            return []
        said = study_constraints.describe(self.constraints)
        tally = self.tally or study_constraints.Tally(0, 0)
        return [
            f"  constraints {said}: {tally.infeasible} of {tally.judged} complete trials "
            "infeasible (never chosen)"
        ]

    def _most_failed(self) -> str:
        """The constraint the most trials missed, as the summary of a study without a winner
        names it: ``latency_ms_b1 <= 2 failed most, 8 of 8 trials``."""
        tally = self.tally
        if tally is None or not tally.most_failed:
            return "none was judged"
        bound = next(c for c in self.constraints if c.name == tally.most_failed)
        said = study_constraints.describe([bound])
        return f"{said} failed most, {tally.most_failed_count} of {tally.judged} trials"


def _ties(ties: list[int], compared: int) -> str:
    if not ties:
        return f"better than each of the next {compared} trials"
    listed = ", ".join(str(t) for t in ties)
    return f"cannot be told apart from trial{'s' if len(ties) > 1 else ''} {listed}"


def fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e4:
        return str(int(value))  # counts such as trainable_params
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def count_states(trials: list[FrozenTrial]) -> dict[str, int]:
    counts = Counter(t.state.name for t in trials)
    order = ["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]
    return {s: counts[s] for s in order if counts[s] or s in ("COMPLETE", "PRUNED", "FAIL")}


def summarize(
    study: optuna.Study,
    metric: str,
    extra: list[str] | None = None,
    constraints: Sequence[Constraint] = (),
) -> Summary:
    """Counts and the best feasible trial (with further objectives, the front's best by
    ``metric``); with further objectives or constraints, the candidates."""
    trials = study.get_trials(deepcopy=False)
    direction = study.directions[0].name.lower()
    summary = Summary(study.study_name, metric, direction, count_states(trials), extra=extra or [])
    summary.constraints = tuple(constraints)
    if constraints:
        summary.tally = study_constraints.tally(study)
    if summary.extra or constraints:
        summary.front = candidates.rows(study, metric, summary.extra, constraints)
    best = study_constraints.best_trial(study)
    if best is not None:
        summary.best_number, summary.best_value = best.number, best.values[0]
        cv = best.user_attrs.get(CV_ATTR, {})
        if len(cv.get(CV_FOLD_VALUES, ())) > 1:  # one fold (holdout, pooled LOO): no spread
            summary.best_std = cv.get(CV_STD)
        summary.best_params = dict(best.params)
        info = cv.get(CV_FIT_FACTS, {})
        summary.best_fit = {k: float(info[k]) for k in FITTED if k in info}
    return summary


def figures(study: optuna.Study, summary: Summary | None = None) -> list[Any]:
    """Optuna's plotly figures of the study, those its trials allow, for its report.

    With further objectives: the Pareto front (two or three objectives), and
    the other plots of the study metric.
    """
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return []
    named = _plots()
    if summary is not None and summary.extra:
        named = pareto.plots(summary.metric, summary.extra, summary.direction)
    elif summary is not None and summary.constraints:  # the candidates against their costs
        metric, bounds = summary.metric, summary.constraints
        named["pareto_front"] = lambda s: candidates.figure(s, metric, bounds)
    drawn = []
    for name, plot in named.items():
        if name == "param_importances" and (len(complete) < 2 or not _varied(complete)):
            continue
        try:
            figure = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            log.warning("skipped the %s plot: %s", name, err)
            continue
        if figure is not None:
            drawn.append(figure)
    return drawn


def _varied(trials: list[FrozenTrial]) -> bool:
    values = {t.values[0] for t in trials if t.values and math.isfinite(t.values[0])}
    return len(values) > 1
