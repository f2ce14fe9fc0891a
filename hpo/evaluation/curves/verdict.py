"""One line from the numbers: high bias, high variance, or a fair trade, and what would help."""

from __future__ import annotations

import numpy as np

from hpo.evaluation.curves.curve import Curve
from hpo.metrics import Direction

GAP_SPREADS = 2.0  # training better than validation by more spreads than this: high variance
SPREAD_FLOOR = 0.01  # of |validation|: the least spread assumed (one fold has none)
RISE_FLOOR = 0.001  # of |validation|: the least gain that counts as still rising


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
    at = where_said(curve)
    if flip * (t - v) > GAP_SPREADS * spread:
        less = _better_side(curve, flip, spread, -curve.more_complex)
        head = f"high variance: training {curve.metric} {fmt(t)} vs validation {fmt(v)} at {at}"
        return (
            "; ".join([head, *_knob_said(curve, less, more), *said])
            + ": "
            + _cure(curve, less, rising)
        )
    close = f"training and validation close ({fmt(t)}, {fmt(v)} {curve.metric}) at {at}"
    if more is not None:
        better = f"{fmt(more[1])} at {curve.knob}={value_said(more[0])}"
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
    return f"{fmt(point[1])} at {curve.knob}={value_said(point[0])}"


def _rows_said(change: float, rising: bool, metric: str) -> str:
    step = f"{metric} {change:+#.3g} over the last step"
    if rising:
        return f"validation still rising with more rows ({step})"
    return f"validation no longer clearly rising with more rows ({step}, within fold noise)"


def where_said(curve: Curve) -> str:
    if curve.kind == "validation":
        return f"the winner's {curve.knob}={value_said(curve.at)}"
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


def fmt(value: float) -> str:
    """A score to 3 significant digits, trailing zeros kept (1.00, 0.600, 54.3)."""
    return f"{value:#.3g}" if abs(value) < 1000 else f"{value:.4g}"


def value_said(value: float) -> str:
    """A knob's value as the space has it: 6, 0.05, 1e-08."""
    return str(value) if isinstance(value, int) else f"{value:.3g}"
