"""Bias and variance of the winner (hpo/evaluation/curves.py): curves on data whose answer
is known, the verdict's rule in both metric directions, the knob and its values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.datasets import make_classification
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from hpo.cv import CVSetup, cross_validate
from hpo.data import Dataset
from hpo.evaluation.curves import (
    Curve,
    bias_and_variance,
    complexity_knob,
    curve_figure,
    knob_values,
    learning_curve,
    validation_curve,
    verdict,
)
from hpo.metrics import get_metric
from objectives.base import FoldData, FoldOutput, Objective, Reporter


@dataclass
class TreeObjective(Objective):
    """A decision tree with ``max_depth`` as its knob, through the Objective contract;
    it keeps every FoldData it was given, to check what the curves showed it."""

    task: str = "classification"
    flavor: str = "sklearn"
    seen: list[FoldData] = field(default_factory=list)

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        self.seen.append(fold)
        if self.task == "classification":
            tree = DecisionTreeClassifier(max_depth=params["max_depth"], random_state=fold.seed)
            return FoldOutput(
                tree.fit(fold.X_train, fold.y_train).predict_proba(fold.X_valid)[:, 1]
            )
        model = DecisionTreeRegressor(max_depth=params["max_depth"], random_state=fold.seed)
        return FoldOutput(model.fit(fold.X_train, fold.y_train).predict(fold.X_valid))

    def refit(self, params, X, y, n_classes, fit_facts, seed) -> Any:
        raise NotImplementedError  # the curves never refit on all rows

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _setup(X: np.ndarray, y: np.ndarray, metric: str, n_splits: int = 3) -> CVSetup:
    task = get_metric(metric).task
    names = [f"x{i}" for i in range(X.shape[1])]
    data = Dataset("generated", X, y, task, names, ["0", "1"] if task == "classification" else None)
    splitter = (StratifiedKFold if task == "classification" else KFold)(
        n_splits, shuffle=True, random_state=0
    )
    return CVSetup(data, list(splitter.split(X, y)), get_metric(metric), seed=7)


@pytest.fixture(scope="module")
def noisy() -> CVSetup:
    """Few rows, many features, 30% of labels flipped: a deep tree learns the noise."""
    X, y = make_classification(90, n_features=20, n_informative=3, flip_y=0.3, random_state=0)
    return _setup(X, y, "accuracy")


@pytest.fixture(scope="module")
def disc() -> CVSetup:
    """Inside a circle or not: a stump cannot draw it, a depth-5 tree nearly can."""
    X = np.random.default_rng(0).uniform(-1, 1, (400, 2))
    return _setup(X, ((X**2).sum(axis=1) < 0.5).astype(int), "accuracy")


@pytest.fixture(scope="module")
def noisy_regression() -> CVSetup:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    return _setup(X, X[:, 0] + rng.normal(size=60), "rmse")


def test_a_deep_tree_on_few_noisy_rows_has_high_variance(noisy) -> None:
    deep = {"max_depth": 12}
    curve = validation_curve(TreeObjective(), deep, noisy, "max_depth", [1, 2, 4, 8])
    assert curve.values == (1, 2, 4, 8, 12) and curve.at == 12  # the winner's value is added
    assert curve.train.shape == curve.valid.shape == (5, 3)
    i = curve.index
    assert np.all(curve.train[i] >= curve.valid[i])  # on every fold
    assert curve.mean("train")[i] == 1.0
    line = verdict(curve, "maximize", learning_curve(TreeObjective(), deep, noisy))
    assert line.startswith("high variance: training accuracy 1.00 vs validation 0.6")
    assert "at the winner's max_depth=12" in line


def test_a_stump_on_a_disc_has_high_bias(disc) -> None:
    curve = validation_curve(TreeObjective(), {"max_depth": 1}, disc, "max_depth", [2, 3, 4, 6])
    train, valid = curve.mean("train"), curve.mean("valid")
    assert abs(train[0] - valid[0]) < 0.05 and valid[-1] > valid[0] + 0.2
    line = verdict(curve, "maximize")
    assert line.startswith("high bias: training and validation close (0.6")
    assert line.endswith("at max_depth=6): a more complex model would help")


def test_the_learning_curve_rises_with_the_rows_on_a_learnable_signal(disc) -> None:
    curve = learning_curve(TreeObjective(), {"max_depth": 5}, disc, (0.1, 0.25, 0.5, 1.0))
    valid = curve.mean("valid")
    assert valid[-1] > valid[0] + 0.05
    assert np.all(np.diff(valid) > -0.01)  # about monotone
    assert curve.rows == pytest.approx([27, 67, 134, 267], abs=1)
    assert curve.at == 1.0 and curve.index == 3


def test_the_learning_curve_fits_nested_stratified_prefixes_and_never_sees_valid_labels(
    disc,
) -> None:
    objective = TreeObjective()
    learning_curve(objective, {"max_depth": 2}, disc, (0.25, 1.0))
    small, full = objective.seen[:3], objective.seen[3:]
    for fold, (train, valid) in enumerate(disc.folds):
        rows = disc.data.X[train]
        got = full[fold]
        assert got.X_train.shape == rows.shape and got.seed == disc.seed + fold
        assert np.allclose(got.X_valid[len(rows) :], disc.data.X[valid])  # scored, not labelled
        assert np.allclose(got.X_valid[: len(rows)], got.X_train)  # its own rows, then valid
        assert np.array_equal(got.X_train, rows)  # all rows: in the fold's own order
        smaller = {tuple(r) for r in small[fold].X_train}
        assert smaller <= {tuple(r) for r in rows} and len(smaller) == round(0.25 * len(rows))
        share = disc.data.y[train].mean()
        assert small[fold].y_train.mean() == pytest.approx(share, abs=0.02)  # stratified


def test_a_minimized_metric_flips_the_comparisons(noisy_regression) -> None:
    curve = validation_curve(
        TreeObjective("regression"), {"max_depth": 12}, noisy_regression, "max_depth", [1, 4]
    )
    i = curve.index
    assert np.all(curve.train[i] <= curve.valid[i])  # rmse: training is better, and lower
    assert verdict(curve, "minimize").startswith("high variance: training rmse 0.00 vs valid")
    assert verdict(curve, "maximize").startswith("balanced")  # the same numbers read upwards


def _curve(train: list[float], valid: list[float], at: float, **more: Any) -> Curve:
    """A curve of three folds per value, each fold the mean +- 0.01 (std 0.0082)."""
    folds = np.array([-0.01, 0.0, 0.01])
    values = more.pop("values", (1, 2, 3))
    return Curve(
        more.pop("kind", "validation"),
        more.pop("knob", "max_depth"),
        values,
        np.array(train)[:, None] + folds,
        np.array(valid)[:, None] + folds,
        at,
        more.pop("metric", "log_loss"),
        more.pop("rows", (100.0,) * len(values)),
        **more,
    )


def test_the_verdict_reads_losses_downwards() -> None:
    overfit = _curve([0.3, 0.1, 0.05], [0.5, 0.4, 0.45], at=2)  # loss: train far lower
    assert verdict(overfit, "minimize").startswith("high variance: training log_loss 0.100")
    assert not verdict(overfit, "maximize").startswith("high variance")
    underfit = _curve([0.6, 0.5, 0.3], [0.61, 0.5, 0.32], at=1)  # deeper: lower validation loss
    assert verdict(underfit, "minimize").startswith("high bias")
    assert "(0.320 at max_depth=3)" in verdict(underfit, "minimize")
    assert verdict(underfit, "maximize").startswith("balanced")  # deeper is worse upwards


def test_more_complex_follows_the_knob_sign() -> None:
    """For min_child_weight a smaller value is the more complex model."""
    kwargs = {"knob": "min_child_weight", "values": (1.0, 4.0, 10.0), "metric": "f1"}
    at_most = _curve([0.95, 0.8, 0.7], [0.93, 0.79, 0.7], at=10.0, more_complex=-1, **kwargs)
    assert verdict(at_most, "maximize").startswith("high bias")
    assert "min_child_weight=1" in verdict(at_most, "maximize")
    upwards = _curve([0.95, 0.8, 0.7], [0.93, 0.79, 0.7], at=10.0, more_complex=1, **kwargs)
    assert verdict(upwards, "maximize").startswith("balanced")


def test_the_learning_slope_decides_more_data() -> None:
    shares = {"kind": "learning", "knob": "training rows", "values": (0.5, 0.75, 1.0)}
    shares |= {"rows": (50.0, 75.0, 100.0), "metric": "f1"}
    rising = verdict(_curve([1.0, 1.0, 1.0], [0.70, 0.75, 0.80], at=1.0, **shares), "maximize")
    assert rising.startswith("high variance: training f1 1.00 vs validation 0.800 at 100 training")
    assert rising.endswith(
        "; validation still rising with more rows (f1 +0.0500 over the last step):"
        " more data or more regularization would help"
    )
    noisy = _curve([1.0, 1.0, 1.0], [0.70, 0.80, 0.802], at=1.0, **shares)
    noisy.valid[-1] += [0.02, -0.02, 0.0]  # per-fold gains +0.022, -0.018, +0.002: noise
    flat = verdict(noisy, "maximize")
    assert "no longer clearly rising with more rows (f1 +0.00200 over the last step" in flat
    assert flat.endswith(": more regularization would help more than more data")
    close = verdict(_curve([0.71, 0.76, 0.81], [0.70, 0.75, 0.80], at=1.0, **shares), "maximize")
    assert close.startswith("balanced: training and validation close (0.810, 0.800 f1)")
    assert close.endswith(
        "still rising with more rows (f1 +0.0500 over the last step): more data would help"
    )


def test_the_knob_says_whether_a_simpler_model_would_help() -> None:
    simpler = _curve([0.9, 0.99, 1.0], [0.9, 0.85, 0.8], at=2, metric="f1")
    line = verdict(simpler, "maximize")
    assert "; a simpler max_depth validates better (0.900 at max_depth=1)" in line
    assert line.endswith(": more data or more regularization would help")
    neither = _curve([0.8, 0.99, 1.0], [0.8, 0.85, 0.85], at=2, metric="f1")
    line = verdict(neither, "maximize")
    assert "; no simpler max_depth validates better" in line
    assert line.endswith(": more data or regularization other than max_depth would help")


def test_the_curves_end_at_the_winners_cv_score(disc) -> None:
    """Same folds, seeds and row order as the trial: the winner's point is its CV value."""
    params = {"max_depth": 3}
    value = cross_validate(TreeObjective(), params, disc).value
    curve = validation_curve(TreeObjective(), params, disc, "max_depth", [1, 5])
    assert curve.mean("valid")[curve.index] == pytest.approx(value)
    assert learning_curve(TreeObjective(), params, disc).mean("valid")[-1] == pytest.approx(value)


def test_one_fold_still_has_a_spread() -> None:
    """Holdout: no std over folds, so 1% of the validation score stands in for it."""
    one = Curve(
        "validation", "max_depth", (2,), np.array([[0.91]]), np.array([[0.9]]), 2, "f1", (9,)
    )
    assert verdict(one, "maximize").startswith("balanced")
    wide = Curve(
        "validation", "max_depth", (2,), np.array([[0.93]]), np.array([[0.9]]), 2, "f1", (9,)
    )
    assert verdict(wide, "maximize").startswith("high variance")


@pytest.mark.parametrize(
    ("entry", "best"),
    [
        (IntDistribution(2, 10), 6),
        (IntDistribution(32, 256, log=True), 100),
        (FloatDistribution(0.01, 0.3, log=True), 0.07),
        (FloatDistribution(0.5, 10.0, log=True), 0.5),
        (FloatDistribution(0.0, 5.0), 1.3),
        ({"type": "float", "low": 0.0, "high": 0.5, "step": 0.1, "when": {"norm": "batch"}}, 0.2),
        ({"type": "int", "low": 1, "high": 6, "grid": [2, 4]}, 4),
    ],
)
def test_knob_values_stay_in_the_range_and_include_the_best(entry: Any, best: float) -> None:
    values = knob_values(entry, best)
    low, high = (
        (entry["low"], entry["high"]) if isinstance(entry, dict) else (entry.low, entry.high)
    )
    assert 5 <= len(values) <= 7 and best in values
    assert values == sorted(set(values)) and low <= values[0] and values[-1] <= high
    assert values[0] == low and values[-1] == high  # both ends: under- and over-fitting show
    if isinstance(entry, IntDistribution | dict) and (
        isinstance(entry, IntDistribution) or entry["type"] == "int"
    ):
        assert all(isinstance(v, int) for v in values)


def test_knob_values_take_log_steps_on_a_log_range() -> None:
    values = np.array(knob_values(FloatDistribution(1e-3, 10.0, log=True), 1e-3))
    ratios = values[1:] / values[:-1]
    assert ratios == pytest.approx(np.full(len(ratios), ratios[0]), rel=0.02)


def test_knob_values_of_small_ranges_and_choices() -> None:
    assert knob_values(IntDistribution(1, 3), 2) == [1, 2, 3]
    ranks = CategoricalDistribution([1, 2, 4, 8, 16, 32, 64, 128])
    assert knob_values(ranks, 8) == [1, 2, 4, 8, 16, 32, 64]  # the 7 around the winner's
    assert knob_values(ranks, 128) == [2, 4, 8, 16, 32, 64, 128]
    with pytest.raises(ValueError, match="numeric choices"):
        knob_values(CategoricalDistribution(["relu", "tanh"]), "relu")  # type: ignore[arg-type]


XGB_SPACE = {
    "max_depth": {"type": "int", "low": 2, "high": 10},
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "min_child_weight": {"type": "float", "low": 0.5, "high": 10.0, "log": True},
    "grow_policy": {"type": "categorical", "choices": ["depthwise", "lossguide"]},
}


def test_complexity_knob_picks_by_importance() -> None:
    weights = {"learning_rate": 0.6, "min_child_weight": 0.3, "max_depth": 0.1}
    assert complexity_knob(XGB_SPACE, weights) == "min_child_weight"  # not learning_rate
    assert complexity_knob(XGB_SPACE, {"max_depth": 0.4, "min_child_weight": 0.3}) == "max_depth"
    assert complexity_knob(XGB_SPACE, None) == "max_depth"  # structure before regularization
    assert complexity_knob(XGB_SPACE, {"learning_rate": 1.0}) == "max_depth"
    mlp = {"lr": FloatDistribution(1e-4, 3e-2, log=True), "width_2": IntDistribution(8, 64)}
    assert complexity_knob(mlp | {"dropout": FloatDistribution(0.0, 0.5)}, None) == "width_2"
    lora = {"r": CategoricalDistribution([1, 2, 4]), "bias": CategoricalDistribution(["none"])}
    assert complexity_knob(lora, {"bias": 0.9, "r": 0.1}) == "r"
    assert complexity_knob({"lr": FloatDistribution(1e-4, 1e-2)}, None) is None
    assert complexity_knob({"max_depth": CategoricalDistribution(["a", "b"])}, None) is None


def test_the_figure_has_both_lines_their_bands_and_the_winner(noisy) -> None:
    curve = validation_curve(TreeObjective(), {"max_depth": 4}, noisy, "max_depth", [1, 8])
    fig = curve_figure(curve, "accuracy", "3 folds of the study's CV, 90 rows")
    band, train, _, valid, winner = fig.data
    assert band.fill == "toself" and len(band.x) == 2 * len(curve.values)
    assert list(train.y) == pytest.approx(curve.mean("train"))
    assert list(valid.y) == pytest.approx(curve.mean("valid"))
    assert winner.x == (4,) and winner.y[0] == pytest.approx(curve.mean("valid")[1])
    title = fig.layout.title.text
    assert title.startswith("Validation curve along max_depth: training")
    assert "3 folds of the study's CV, 90 rows; bands: ± 1 std over 3 folds" in title
    assert fig.layout.xaxis.title.text == "max_depth"


def test_bias_and_variance_ties_it_together(disc) -> None:
    space = {"max_depth": IntDistribution(1, 8), "criterion": CategoricalDistribution(["gini"])}
    found = bias_and_variance(TreeObjective(), {"max_depth": 1, "criterion": "gini"}, disc, space)
    assert found.validation is not None and found.validation.values == (1, 2, 4, 5, 7, 8)
    assert found.verdict.startswith("high bias")
    assert found.learning.values == (0.1, 0.25, 0.5, 0.75, 1.0)
    figures = found.figures("accuracy", "out-of-fold, 400 rows")
    assert sorted(figures) == ["learning_curve", "validation_curve"]
    assert figures["learning_curve"].layout.xaxis.title.text == "training rows (mean over folds)"


def test_leave_one_out_is_refused(disc) -> None:
    loo = CVSetup(disc.data, disc.folds, disc.metric, disc.seed, leave_one_out=True)
    with pytest.raises(ValueError, match="leave-one-out"):
        learning_curve(TreeObjective(), {"max_depth": 2}, loo)


def test_the_module_example_runs() -> None:
    import doctest

    from hpo.evaluation import curves

    assert doctest.testmod(curves).failed == 0
