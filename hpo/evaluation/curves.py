"""Bias and variance of the winner: a validation curve, a learning curve, and one line.

The validation curve refits the winner with one complexity knob (depth, rounds,
width, rank) set to each of a few values along its range; the learning curve
refits it on growing shares of each fold's training rows. Both score every fold
of the study's CV twice: on the rows the model was fit on (training) and on the
fold's validation rows, through the objective's own ``fit_predict``, so the
numbers are the study's. ``verdict`` reads them (rule in its docstring).

Example (two folds; rows: max_depth 2, 6, 10):
    >>> train = np.array([[0.80, 0.82], [0.99, 0.99], [1.0, 1.0]])
    >>> valid = np.array([[0.78, 0.80], [0.90, 0.92], [0.9, 0.9]])
    >>> curve = Curve("validation", "max_depth", (2, 6, 10), train, valid, at=6,
    ...               metric="f1", rows=(100, 100, 100))
    >>> for part in verdict(curve, "maximize").replace(": ", "; ").split("; "):
    ...     print(part)
    high variance
    training f1 0.990 vs validation 0.910 at the winner's max_depth=6
    no simpler max_depth validates better
    more data or regularization other than max_depth would help
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import numpy as np
import plotly.graph_objects as go
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo.cv import CVSetup
from hpo.evaluation.report import layout, mark
from hpo.metrics import Direction, Metric
from hpo.space import Param, parse_space
from objectives.base import FoldData, Objective

LEARNING_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)
SPACED = 6  # values spread along a knob's range; with the winner's own, 6 or 7 in all
WINDOW = 7  # the most categorical choices around the winner's
GAP_SPREADS = 2.0  # training better than validation by more spreads than this: high variance
SPREAD_FLOOR = 0.01  # of |validation|: the least spread assumed (one fold has none)
RISE_FLOOR = 0.001  # of |validation|: the least gain that counts as still rising

# The complexity knobs of the shipped objectives (studies/*.yaml, objectives/*) and their
# usual names elsewhere, in order of preference when importances cannot choose: +1 where
# a larger value fits the rows more closely, -1 where it regularizes.
COMPLEXITY: dict[str, int] = {
    "max_depth": 1,
    "max_leaves": 1,
    "num_leaves": 1,
    "n_estimators": 1,
    "n_rounds": 1,
    "max_rounds": 1,
    "n_layers": 1,
    "width": 1,
    "hidden": 1,
    "hidden_size": 1,
    "r": 1,
    "epochs": 1,
    "max_epochs": 1,
    "C": 1,
    "min_child_weight": -1,
    "min_samples_leaf": -1,
    "gamma": -1,
    "reg_lambda": -1,
    "reg_alpha": -1,
    "alpha": -1,
    "weight_decay": -1,
    "dropout": -1,
    "lora_dropout": -1,
}
PER_LAYER_WIDTH = re.compile(r"width_\d+")  # the MLP's per-layer widths rank as width


@dataclass(frozen=True)
class Curve:
    """Scores along one axis, per value and fold.

    ``kind`` "validation": ``values`` are values of ``knob``, ``at`` the winner's;
    "learning": shares of each fold's training rows, ``at`` 1.0 (all of them).
    ``train`` and ``valid`` are (len(values), n_folds) arrays of ``metric``: on the
    rows each model was fit on, and on the fold's validation rows. ``rows``: training
    rows per value, the mean over folds. ``more_complex``: +1 when a larger value of
    the knob fits more closely, -1 when it regularizes (``COMPLEXITY``).
    """

    kind: Literal["validation", "learning"]
    knob: str
    values: tuple[float, ...]
    train: np.ndarray
    valid: np.ndarray
    at: float
    metric: str
    rows: tuple[float, ...]
    more_complex: int = 1

    @property
    def index(self) -> int:
        """Where the winner's value is in ``values``."""
        return self.values.index(self.at)

    def mean(self, which: Literal["train", "valid"]) -> np.ndarray:
        return _over_folds(np.nanmean, getattr(self, which))

    def std(self, which: Literal["train", "valid"]) -> np.ndarray:
        return _over_folds(np.nanstd, getattr(self, which))


def _over_folds(fn: Any, scores: np.ndarray) -> np.ndarray:
    out = np.full(len(scores), np.nan)
    defined = ~np.all(np.isnan(scores), axis=1)  # no warning for a value no fold could score
    out[defined] = fn(scores[defined], axis=1)
    return out


def validation_curve(
    objective: Objective,
    params: dict[str, Any],
    setup: CVSetup,
    knob: str,
    values: Sequence[float],
) -> Curve:
    """The winner's ``params`` with ``knob`` set to each of ``values`` (and to its own
    value, always, so the verdict reads the winner), scored on every fold."""
    if knob not in params:
        raise ValueError(f"the winner has no parameter '{knob}' to draw a validation curve along")
    at = params[knob]
    grid = tuple(sorted({*values, at}))
    runs = [
        ({**params, knob: v}, i, train) for v in grid for i, (train, _) in enumerate(setup.folds)
    ]
    train, valid = _score(objective, setup, runs, len(grid))
    rows = tuple(float(np.mean([len(t) for t, _ in setup.folds])) for _ in grid)
    return Curve("validation", knob, grid, train, valid, at, setup.metric.name, rows, sign(knob))


def learning_curve(
    objective: Objective,
    params: dict[str, Any],
    setup: CVSetup,
    fractions: Sequence[float] = LEARNING_FRACTIONS,
) -> Curve:
    """The winner fit on the first ``fraction`` of each fold's training rows, validation
    rows unchanged.

    Each fold's training rows are put in one seeded order (``setup.seed`` + fold, as the
    folds' fits are seeded), stratified by class for classification so that every prefix
    keeps the class shares; a smaller share is a prefix of a larger one, so the curve's
    last step adds rows to the same rows rather than comparing two unrelated draws.
    All the rows are fit in the fold's own order, as the trial fit them (an objective's
    inner split depends on the order), so the curve ends at the winner's CV score.
    """
    shares = tuple(sorted({float(f) for f in fractions}))
    if not shares or shares[0] <= 0 or shares[-1] > 1:
        raise ValueError(f"learning-curve fractions must lie in (0, 1], not {list(fractions)}")
    least = max(2, setup.data.n_classes)
    orders = [_order(setup, train, i) for i, (train, _) in enumerate(setup.folds)]
    cuts = [[min(len(o), max(least, round(f * len(o)))) for o in orders] for f in shares]
    runs = [(params, i, _first(setup, i, o, cut[i])) for cut in cuts for i, o in enumerate(orders)]
    train, valid = _score(objective, setup, runs, len(shares))
    rows = tuple(float(np.mean(cut)) for cut in cuts)
    return Curve(
        "learning", "training rows", shares, train, valid, shares[-1], setup.metric.name, rows
    )


def _first(setup: CVSetup, fold: int, order: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows of the fold's order; all of them in the fold's own order."""
    return np.asarray(setup.folds[fold][0]) if n == len(order) else order[:n]


def _order(setup: CVSetup, train: np.ndarray, fold: int) -> np.ndarray:
    """The fold's training rows in a seeded order whose every prefix is stratified.

    Row i (0-based, shuffled) of a class of n rows gets the key (i + u) / n, u uniform
    in [0, 1): sorted by key, each class is spread evenly over the order.
    """
    rng = np.random.default_rng(setup.seed + fold)
    train = np.asarray(train)
    if setup.data.task != "classification":
        return rng.permutation(train)
    labels = setup.data.y[train]
    keys = np.empty(len(train))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        keys[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return train[np.argsort(keys, kind="stable")]


Run = tuple[dict[str, Any], int, np.ndarray]  # params, fold index, the rows to fit on


def _score(
    objective: Objective, setup: CVSetup, runs: list[Run], n_values: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) scores, each (n_values, n_folds); ``setup.n_jobs`` fits at once."""
    if setup.leave_one_out:
        raise ValueError("curves need folds with several validation rows, not leave-one-out")
    n_jobs = max(1, min(setup.n_jobs, len(runs)))
    threads = max(1, (os.cpu_count() or 1) // n_jobs)

    def one(run: Run) -> tuple[float, float]:
        return _fit_fold(objective, setup, *run, threads=threads)

    if n_jobs == 1:
        scores = [one(run) for run in runs]
    else:
        with ThreadPoolExecutor(n_jobs) as pool:
            scores = list(pool.map(one, runs))
    both = np.asarray(scores, dtype=float).reshape(n_values, len(setup.folds), 2)
    return both[..., 0], both[..., 1]


def _fit_fold(
    objective: Objective,
    setup: CVSetup,
    params: dict[str, Any],
    fold: int,
    rows: np.ndarray,
    threads: int,
) -> tuple[float, float]:
    """One fit on ``rows``, scoring its own rows and the fold's validation rows.

    The objective sees validation rows without labels, as in a trial: its ``X_valid``
    is the training rows followed by the validation rows, so one model (one fit, one
    seed) gives both scores, and the training score is of the model that was validated.
    """
    data, valid = setup.data, setup.folds[fold][1]
    X_train, y_train = data.X[rows], data.y[rows]
    scored = np.concatenate([X_train, data.X[valid]])
    seed = setup.seed + fold
    out = objective.fit_predict(
        params, FoldData(X_train, y_train, scored, data.n_classes, seed, threads, setup.metric)
    )
    scores = np.asarray(out.scores)
    n = len(y_train)
    return _metric(setup.metric, y_train, scores[:n]), _metric(
        setup.metric, data.y[valid], scores[n:]
    )


def _metric(metric: Metric, y: np.ndarray, scores: np.ndarray) -> float:
    try:
        return metric(y, scores)
    except ValueError:  # undefined on these rows (ROC-AUC on one class): left out of the mean
        return math.nan


def sign(knob: str) -> int:
    """+1 when a larger ``knob`` fits more closely, -1 when it regularizes; +1 if unknown."""
    return COMPLEXITY.get("width" if PER_LAYER_WIDTH.fullmatch(knob) else knob, 1)


def complexity_knob(
    space_params: Mapping[str, Any], importances: Mapping[str, float] | None
) -> str | None:
    """The most important numeric complexity knob of the space, or None if it has none.

    ``space_params``: name -> a space entry (an Optuna distribution, a ``Param`` or the
    study YAML's mapping); pass only the winner's parameters when the space has
    conditional ones. Ties, and no importances, fall back to ``COMPLEXITY``'s order:
    structure (depth, rounds, width) before regularization.
    """
    order = list(COMPLEXITY)

    def rank(name: str) -> int:
        return order.index("width" if PER_LAYER_WIDTH.fullmatch(name) else name)

    knobs = sorted(
        (n for n in space_params if _is_complexity(n) and _numeric(space_params[n])), key=rank
    )
    if not knobs:
        return None
    weights = importances or {}
    return max(knobs, key=lambda n: weights.get(n, 0.0))  # the first of equals wins


def _is_complexity(name: str) -> bool:
    return name in COMPLEXITY or PER_LAYER_WIDTH.fullmatch(name) is not None


def _numeric(entry: Any) -> bool:
    d = distribution(entry)
    if isinstance(d, CategoricalDistribution):
        return all(_number(c) for c in d.choices)
    return isinstance(d, IntDistribution | FloatDistribution)


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def distribution(entry: BaseDistribution | Param | Mapping[str, Any]) -> BaseDistribution:
    """The Optuna distribution of a space entry, in any of the forms the study has it."""
    if isinstance(entry, Param):
        return entry.distribution
    if isinstance(entry, BaseDistribution):
        return entry
    keys = ("type", "low", "high", "step", "log", "choices")  # `when` names other parameters
    return parse_space({"knob": {k: entry[k] for k in keys if k in entry}}).params[0].distribution


def knob_values(
    space_entry: BaseDistribution | Param | Mapping[str, Any], best_value: float
) -> list[float]:
    """5-7 values of a knob for its validation curve: spread along its whole range (in
    log steps on a log range) so that both ends, under- and over-fitting, show, plus
    the winner's value. A small int range gives all its values; a numeric categorical
    the (at most 7) choices around the winner's."""
    d = distribution(space_entry)
    if isinstance(d, CategoricalDistribution):
        if not all(_number(c) for c in d.choices):
            raise ValueError(f"a validation curve needs numeric choices, not {list(d.choices)}")
        choices = sorted({*(c for c in d.choices if _number(c)), best_value})
        i = choices.index(best_value)
        start = max(0, min(i - WINDOW // 2, len(choices) - WINDOW))
        return choices[start : start + WINDOW]
    best: float
    spread: list[Any]
    if isinstance(d, IntDistribution):
        best, spread = int(best_value), _int_values(d)
    else:
        assert isinstance(d, FloatDistribution)
        best, spread = float(best_value), _float_values(d)
    return sorted({*_apart(spread, best, d.log), best})


def _apart(points: list[Any], best: float, log: bool) -> list[Any]:
    """The spread points without the inner ones within a quarter step of the winner's
    (0.5, 1.0, 1.05, 2.19: a fit spent on a point the winner's already shows)."""
    scale = np.log if log and min(*points, best) > 0 else (lambda x: x)
    quarter = (scale(points[-1]) - scale(points[0])) / (len(points) - 1) / 4
    inner = points[1:-1]
    kept = [p for p in inner if p == best or abs(scale(p) - scale(best)) >= quarter]
    return [points[0], *kept, points[-1]]


def _spread(low: float, high: float, log: bool) -> np.ndarray:
    return np.geomspace(low, high, SPACED) if log else np.linspace(low, high, SPACED)


def _int_values(d: IntDistribution) -> list[int]:
    if (d.high - d.low) // d.step + 1 <= WINDOW:
        return list(range(d.low, d.high + 1, d.step))
    steps = (_spread(d.low, d.high, d.log) - d.low) / d.step
    return [d.low + d.step * math.floor(s + 0.5) for s in steps]


def _float_values(d: FloatDistribution) -> list[float]:
    points = _spread(d.low, d.high, d.log)
    if d.step is not None:
        snapped = d.low + d.step * np.round((points - d.low) / d.step)
        return [float(v) for v in np.clip(snapped, d.low, d.high)]
    return [min(max(float(f"{p:.3g}"), d.low), d.high) for p in points]  # readable, in range


def verdict(curve: Curve, direction: Direction, learning: Curve | None = None) -> str:
    """One line on the winner's bias and variance that follows from the curves' numbers.

    Scores are read so that higher is better (a minimized metric is negated). At the
    winner's point (its knob value on a validation curve; all training rows on a
    learning curve), with s the validation score's std over folds, at least
    ``SPREAD_FLOOR`` of |validation| (one fold has no spread):

    - gap: training minus validation; *high variance* when gap > ``GAP_SPREADS`` * s.
    - along the knob (a validation curve): a value on the more complex side of the
      winner's (``COMPLEXITY`` sign), or on the simpler side, validates better by more
      than s. A more complex one without high variance is *high bias*; neither is
      *balanced*. With high variance, the knob says whether a simpler value would help.
    - still rising: the learning curve's (``learning``, or ``curve`` itself) validation
      gain between its last two shares exceeds its standard error over the folds
      (paired: same folds) and ``RISE_FLOOR`` of |validation|: more rows would help.
    """
    flip = 1.0 if direction == "maximize" else -1.0
    i = curve.index
    t, v = float(curve.mean("train")[i]), float(curve.mean("valid")[i])
    spread = max(float(curve.std("valid")[i]), SPREAD_FLOOR * abs(v), 1e-12)
    rows = learning if learning is not None else (curve if curve.kind == "learning" else None)
    last = None if rows is None else _last_gain(rows, flip)
    rising = None if last is None else last[1]
    said = [] if last is None else [_rows_said(last[0] * flip, last[1], curve.metric)]
    more = _better_side(curve, flip, spread, curve.more_complex)
    at = _where(curve)
    if flip * (t - v) > GAP_SPREADS * spread:
        less = _better_side(curve, flip, spread, -curve.more_complex)
        head = f"high variance: training {curve.metric} {_fmt(t)} vs validation {_fmt(v)} at {at}"
        return (
            "; ".join([head, *_knob_said(curve, less, more), *said])
            + ": "
            + _cure(curve, less, rising)
        )
    close = f"training and validation close ({_fmt(t)}, {_fmt(v)} {curve.metric}) at {at}"
    if more is not None:
        better = f"{_fmt(more[1])} at {curve.knob}={_value(more[0])}"
        head = f"high bias: {close}, both below a more complex model's validation ({better})"
        data = ", and so would more data" if rising else ""
        return "; ".join([head, *said]) + f": a more complex model would help{data}"
    knob = [f"no more complex {curve.knob} validates better"] if curve.kind == "validation" else []
    if rising:
        cure = "more data would help"
    elif rising is None:
        cure = f"the winner's {curve.knob} fits"
    else:
        cure = "more data would not help"
        if knob:
            cure = "neither more data nor a more complex model is called for"
    return "; ".join([f"balanced: {close}", *knob, *said]) + f": {cure}"


def _knob_said(
    curve: Curve, less: tuple[float, float] | None, more: tuple[float, float] | None
) -> list[str]:
    """What the validation curve says of a simpler or a more complex value of the knob."""
    if curve.kind != "validation":
        return []
    if less is not None:
        return [f"a simpler {curve.knob} validates better ({_point(curve, less)})"]
    if more is not None:
        return [f"a more complex {curve.knob} validates better ({_point(curve, more)})"]
    return [f"no simpler {curve.knob} validates better"]


def _cure(curve: Curve, less: tuple[float, float] | None, rising: bool | None) -> str:
    simpler = less is not None or curve.kind == "learning"
    regularize = "more regularization" if simpler else f"regularization other than {curve.knob}"
    if rising is False:
        return f"{regularize} would help more than more data"
    return f"more data or {regularize} would help"


def _point(curve: Curve, point: tuple[float, float]) -> str:
    return f"{_fmt(point[1])} at {curve.knob}={_value(point[0])}"


def _rows_said(change: float, rising: bool, metric: str) -> str:
    step = f"{metric} {change:+#.3g} over the last step"
    if rising:
        return f"validation still rising with more rows ({step})"
    return f"validation no longer clearly rising with more rows ({step}, within fold noise)"


def _where(curve: Curve) -> str:
    if curve.kind == "validation":
        return f"the winner's {curve.knob}={_value(curve.at)}"
    return f"{curve.rows[curve.index]:.0f} training rows"


def _better_side(curve: Curve, flip: float, spread: float, side: int) -> tuple[float, float] | None:
    """(value, validation) of the best value on ``side`` of the winner's (+1: larger),
    when it beats the winner's validation by more than ``spread``; None otherwise, or on
    a learning curve."""
    if curve.kind != "validation":
        return None
    valid = curve.mean("valid")
    at = valid[curve.index]
    better = [
        (flip * (valid[j] - at), x)
        for j, x in enumerate(curve.values)
        if (x - curve.at) * side > 0 and flip * (valid[j] - at) > spread
    ]
    if not better:
        return None
    _, x = max(better)
    return x, float(valid[curve.values.index(x)])


def _last_gain(curve: Curve, flip: float) -> tuple[float, bool] | None:
    """The validation gain (higher is better) of the learning curve's last step, and
    whether it is real: above its standard error over the folds and ``RISE_FLOOR``."""
    if len(curve.values) < 2:
        return None
    gains = flip * (curve.valid[-1] - curve.valid[-2])  # per fold: same folds, nested rows
    gains = gains[~np.isnan(gains)]
    if not len(gains):
        return None
    error = float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else 0.0
    level = abs(float(curve.mean("valid")[-1]))
    gain = float(gains.mean())
    return gain, gain > max(error, RISE_FLOOR * level)


def _fmt(value: float) -> str:
    """A score to 3 significant digits, trailing zeros kept (1.00, 0.600, 54.3)."""
    return f"{value:#.3g}" if abs(value) < 1000 else f"{value:.4g}"


def _value(value: float) -> str:
    """A knob's value as the space has it: 6, 0.05, 1e-08."""
    return str(value) if isinstance(value, int) else f"{value:.3g}"


TRAIN_COLOR, VALID_COLOR = "#636efa", "#ef553b"
LOG_AXIS_RATIO = 10  # a knob spanning more than this factor is drawn on a log axis
BANDS = {TRAIN_COLOR: "rgba(99, 110, 250, 0.15)", VALID_COLOR: "rgba(239, 85, 59, 0.15)"}


def curve_figure(curve: Curve, metric_name: str, where: str) -> go.Figure:
    """Training and validation means over folds, ± 1 std bands, the winner marked."""
    x = np.asarray(curve.values if curve.kind == "validation" else curve.rows, dtype=float)
    fig = go.Figure()
    n_folds = curve.valid.shape[1]
    for name, scores, color in (
        ("training", curve.train, TRAIN_COLOR),
        ("validation", curve.valid, VALID_COLOR),
    ):
        mean, std = _over_folds(np.nanmean, scores), _over_folds(np.nanstd, scores)
        fig.add_scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([mean + std, (mean - std)[::-1]]),
            mode="lines",
            fill="toself",
            fillcolor=BANDS[color],
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            name=f"{name} ± 1 std",
        )
        fig.add_scatter(
            x=x,
            y=mean,
            mode="lines+markers",
            name=f"{name} (mean of {n_folds} folds)",
            line={"color": color},
            customdata=std,
            hovertemplate=f"{name} %{{y:.4g}} ± %{{customdata:.3g}}<extra></extra>",
        )
    i = curve.index
    t, v = curve.mean("train")[i], curve.mean("valid")[i]
    said = f"training {_fmt(t)} vs validation {_fmt(v)} at {_where(curve)}"
    if curve.kind == "validation":
        mark(fig, x[i], v, f"the winner: {curve.knob}={_value(curve.at)}")
        what, x_title = f"Validation curve along {curve.knob}: {said}", curve.knob
    else:
        mark(fig, x[i], v, "the winner, on all training rows")
        what, x_title = f"Learning curve: {said}", "training rows (mean over folds)"
    log = curve.kind == "validation" and x.min() > 0 and x.max() / x.min() > LOG_AXIS_RATIO
    return layout(
        fig,
        what,
        f"{where}; bands: ± 1 std over {n_folds} folds",
        x_title,
        f"{metric_name} (mean over folds)",
        xaxis={"type": "log"} if log else {},
    )


@dataclass(frozen=True)
class BiasVariance:
    """Both curves of the winner (no validation curve without a complexity knob) and the line."""

    verdict: str
    learning: Curve
    validation: Curve | None = None

    def figures(self, metric_name: str, where: str) -> dict[str, go.Figure]:
        """File name (without .html) -> figure, as ``Report.figures`` holds them."""
        out = {"learning_curve": curve_figure(self.learning, metric_name, where)}
        if self.validation is not None:
            out["validation_curve"] = curve_figure(self.validation, metric_name, where)
        return out


def bias_and_variance(
    objective: Objective,
    params: dict[str, Any],
    setup: CVSetup,
    space: Mapping[str, Any],
    importances: Mapping[str, float] | None = None,
    direction: Direction | None = None,
) -> BiasVariance:
    """Everything above for the winner: its knob chosen, both curves, the verdict.

    ``space``: name -> entry of the study's space; ``direction``: the metric's own
    unless given (better means better for the metric, whatever the study stated).
    """
    knob = complexity_knob({n: e for n, e in space.items() if n in params}, importances)
    validation = None
    if knob is not None:
        values = knob_values(space[knob], params[knob])
        validation = validation_curve(objective, params, setup, knob, values)
    learning = learning_curve(objective, params, setup)
    line = verdict(validation or learning, direction or setup.metric.direction, learning)
    return BiasVariance(line, learning, validation)
