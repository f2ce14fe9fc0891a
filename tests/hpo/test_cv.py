import dataclasses
import threading
import time

import numpy as np
import pytest

from hpo.config import CVConfig
from hpo.cv import CVSetup, FoldsPruned, cross_validate, folds_side_by_side
from hpo.folds import make_folds
from hpo.metrics import get_metric
from objectives.base import FoldData, FoldOutput, Objective
from tests.hpo.cv_data import classification_data, regression_data


class MeanObjective(Objective):
    """Predicts the training mean (regression) or the class prior (classification).

    Records the row ids (column 0 of X) of every fold it is given.
    """

    flavor = "none"

    def __init__(self, task="regression"):
        self.task = task
        self.calls = []

    def fit_predict(self, params, fold, report=None):
        self.calls.append((fold.X_train[:, 0].astype(int), fold.X_valid[:, 0].astype(int)))
        n = len(fold.X_valid)
        if self.task == "regression":
            scores = np.full(n, fold.y_train.mean())
        elif fold.n_classes > 2:
            prior = np.bincount(fold.y_train, minlength=fold.n_classes) / len(fold.y_train)
            scores = np.tile(prior, (n, 1))
        else:
            scores = np.full(n, fold.y_train.mean())
        return FoldOutput(scores, {"n_train": float(len(fold.y_train))}, {"curve": [1.0, 0.5]})

    def refit(self, params, X, y, n_classes, info, seed):
        return y.mean()

    def predict(self, model, X):
        return np.full(len(X), model)


# --- cross_validate ----------------------------------------------------------


def _kfold(data, n_splits=4):
    return make_folds(CVConfig(scheme="kfold", n_splits=n_splits, seed=0), data)


def test_cross_validate_matches_per_fold_metric_by_hand():
    data = regression_data()
    folds = _kfold(data)
    result = cross_validate(MeanObjective(), {}, CVSetup(data, folds, get_metric("rmse"), seed=0))

    by_hand = []
    for train, valid in folds:
        error = data.y[valid] - data.y[train].mean()
        by_hand.append(np.sqrt(np.mean(error**2)))
    assert result.fold_values == pytest.approx(by_hand)
    assert result.value == pytest.approx(np.mean(by_hand))
    assert result.std == pytest.approx(np.std(by_hand))
    assert result.std > 0


def test_cross_validate_other_metrics_are_out_of_fold():
    data = regression_data()
    folds = _kfold(data)
    result = cross_validate(MeanObjective(), {}, CVSetup(data, folds, get_metric("rmse"), seed=0))

    oof = np.empty(len(data.y))
    for train, valid in folds:
        oof[valid] = data.y[train].mean()
    assert list(result.oof_index) == list(range(len(data.y)))
    assert result.oof_scores == pytest.approx(oof)


def test_cross_validate_averages_fit_facts_and_keeps_each_fold_s_curve():
    """Joined, the folds' curves were one sawtooth line with no fold boundaries."""
    data = regression_data(n=40)
    folds = _kfold(data, n_splits=4)
    result = cross_validate(MeanObjective(), {}, CVSetup(data, folds, get_metric("mae"), seed=0))
    assert result.fit_facts == {"n_train": pytest.approx(30.0)}
    assert result.curves == {f"curve/fold_{k}": [1.0, 0.5] for k in range(4)}


def test_cross_validate_passes_seed_plus_fold_index():
    seeds = []

    class SeedSpy(MeanObjective):
        def fit_predict(self, params, fold, report=None):
            seeds.append(fold.seed)
            return super().fit_predict(params, fold, report)

    data = regression_data()
    cross_validate(SeedSpy(), {}, CVSetup(data, _kfold(data, 3), get_metric("mae"), seed=10))
    assert seeds == [10, 11, 12]


def test_cross_validate_multiclass_prior():
    data = classification_data((30, 15, 15))
    folds = make_folds(CVConfig(scheme="stratified_kfold", n_splits=5, seed=0), data)
    result = cross_validate(
        MeanObjective("classification"), {}, CVSetup(data, folds, get_metric("log_loss"), seed=0)
    )
    # Every stratified training fold has the prior (0.5, 0.25, 0.25).
    expected = -(0.5 * np.log(0.5) + 0.5 * np.log(0.25))
    assert result.value == pytest.approx(expected)
    assert result.fold_values == pytest.approx([expected] * 5)
    assert result.oof_scores.shape == (len(data.y), 3)
    assert result.oof_scores[:, 0] == pytest.approx(0.5)


def test_pooled_loo_computes_one_value_on_pooled_predictions():
    data = regression_data(n=9)
    folds = make_folds(CVConfig(scheme="loo", shuffle=False), data)
    prune_calls = []
    result = cross_validate(
        MeanObjective(),
        {},
        CVSetup(data, folds, get_metric("rmse"), seed=0, leave_one_out=True),
        should_prune=lambda step, value: prune_calls.append(step) or False,
    )
    y = data.y
    loo_mean = (y.sum() - y) / (len(y) - 1)  # mean of all other rows
    expected = np.sqrt(np.mean((y - loo_mean) ** 2))
    assert result.fold_values == [pytest.approx(expected)]
    assert result.value == pytest.approx(expected)
    assert result.std == 0.0
    assert prune_calls == []  # one pooled value: nothing to prune on per fold


def test_pooled_f1_is_defined_where_per_row_f1_is_not():
    data = classification_data((6, 4))
    folds = make_folds(CVConfig(scheme="loo", shuffle=False), data)

    class Threshold(MeanObjective):
        """Predicts class 1 exactly when x > 0 (a fixed rule, no fitting)."""

        def fit_predict(self, params, fold, report=None):
            return FoldOutput((fold.X_valid[:, 1] > 0).astype(float))

    result = cross_validate(
        Threshold("classification"),
        {},
        CVSetup(data, folds, get_metric("f1"), seed=0, leave_one_out=True),
    )
    predicted = data.X[:, 1] > 0
    tp = np.sum(predicted & (data.y == 1))
    fp = np.sum(predicted & (data.y == 0))
    fn = np.sum(~predicted & (data.y == 1))
    assert result.value == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_should_prune_sees_each_step_and_running_mean():
    data = regression_data()
    folds = _kfold(data)
    calls = []
    result = cross_validate(
        MeanObjective(),
        {},
        CVSetup(data, folds, get_metric("rmse"), seed=0),
        should_prune=lambda step, value: calls.append((step, value)) or False,
    )
    running = np.cumsum(result.fold_values) / np.arange(1, len(folds) + 1)
    assert [step for step, _ in calls] == [0, 1, 2, 3]
    assert [value for _, value in calls] == pytest.approx(running)


def test_pruning_after_the_first_fold_raises_folds_pruned():
    data = regression_data()
    folds = _kfold(data)
    objective = MeanObjective()
    with pytest.raises(FoldsPruned) as err:
        cross_validate(
            objective,
            {},
            CVSetup(data, folds, get_metric("rmse"), seed=0),
            should_prune=lambda s, v: True,
        )
    train, valid = folds[0]
    first = np.sqrt(np.mean((data.y[valid] - data.y[train].mean()) ** 2))
    assert err.value.result.fold_values == [pytest.approx(first)]
    assert err.value.result.value == pytest.approx(first)
    assert len(objective.calls) == 1  # the other folds were never fitted


def test_fold_data_carries_no_validation_labels():
    names = {f.name for f in dataclasses.fields(FoldData)}
    assert {"X_train", "y_train", "X_valid"} <= names
    assert [name for name in names if name.startswith("y")] == ["y_train"]


def test_objective_never_trains_on_validation_rows():
    data = classification_data()
    folds = make_folds(CVConfig(scheme="stratified_kfold", n_splits=5, seed=0), data)
    objective = MeanObjective("classification")
    cross_validate(objective, {}, CVSetup(data, folds, get_metric("accuracy"), seed=0))
    assert len(objective.calls) == len(folds)
    for (seen_train, seen_valid), (train, valid) in zip(objective.calls, folds, strict=True):
        assert not set(seen_train) & set(valid)
        assert seen_train.tolist() == train.tolist()
        assert seen_valid.tolist() == valid.tolist()


# --- folds side by side --------------------------------------------------------


def test_parallel_folds_give_the_same_result_and_report_in_fold_order():
    data = classification_data()
    folds = make_folds(CVConfig(scheme="stratified_kfold", n_splits=5, seed=0), data)
    steps: list[int] = []

    def record(step: int, value: float) -> bool:
        steps.append(step)
        return False

    serial = cross_validate(
        MeanObjective("classification"), {}, CVSetup(data, folds, get_metric("roc_auc"), seed=0)
    )
    parallel = cross_validate(
        MeanObjective("classification"),
        {},
        CVSetup(data, folds, get_metric("roc_auc"), seed=0, n_jobs=2),
        should_prune=record,
    )
    assert parallel.fold_values == pytest.approx(serial.fold_values)
    assert parallel.oof_scores == pytest.approx(serial.oof_scores)
    assert steps == [0, 1, 2, 3, 4]


def test_parallel_folds_stop_after_the_wave_that_was_pruned():
    data = regression_data()
    folds = _kfold(data)
    objective = MeanObjective()
    with pytest.raises(FoldsPruned) as err:
        cross_validate(
            objective,
            {},
            CVSetup(data, folds, get_metric("rmse"), seed=0, n_jobs=2),
            should_prune=lambda s, v: True,
        )
    assert len(err.value.result.fold_values) == 1
    # the first wave had two folds (the second may be cancelled before it starts); no later wave
    assert len(objective.calls) in (1, 2)


class SlowSecondFold(MeanObjective):
    """Fold 1 waits (up to 10 s) until the harness says the trial is over; records threads."""

    def __init__(self):
        super().__init__()
        self.threads: list[int] = []
        self.told_to_stop = threading.Event()

    def fit_predict(self, params, fold, report=None):
        self.threads.append(fold.threads)
        if fold.seed == 1:  # seed + fold index: fold 1
            deadline = time.monotonic() + 10
            while not fold.stopped() and time.monotonic() < deadline:
                time.sleep(0.01)
            if fold.stopped():
                self.told_to_stop.set()
        return super().fit_predict(params, fold, report)


def test_a_pruned_trial_tells_the_fold_beside_it_to_stop():
    data = regression_data()
    objective = SlowSecondFold()
    started = time.monotonic()
    with pytest.raises(FoldsPruned):
        cross_validate(
            objective,
            {},
            CVSetup(data, _kfold(data), get_metric("rmse"), seed=0, n_jobs=2),
            should_prune=lambda s, v: True,
        )
    assert objective.told_to_stop.is_set()
    assert time.monotonic() - started < 5  # it did not wait out fold 1's 10 s


def test_a_short_last_wave_gets_every_core(monkeypatch):
    monkeypatch.setattr("hpo.cv.os.cpu_count", lambda: 4)
    data = regression_data()
    objective = MeanObjective()
    seen: list[int] = []
    objective.fit_predict = lambda p, fold, report=None: (  # type: ignore[method-assign]
        seen.append(fold.threads) or MeanObjective.fit_predict(objective, p, fold, report)
    )
    folds = _kfold(data, n_splits=5)
    cross_validate(objective, {}, CVSetup(data, folds, get_metric("rmse"), seed=0, n_jobs=2))
    assert sorted(seen) == [2, 2, 2, 2, 4]  # 5 folds: two waves of two, then one alone


@pytest.mark.parametrize(
    ("n_folds", "cores", "expected"),
    [(5, 2, 3), (10, 2, 2), (3, 2, 3), (1, 2, 1), (4, 2, 2), (5, 1, 1), (5, 8, 5), (7, 3, 4)],
)
def test_default_folds_side_by_side_leave_no_lone_last_wave(n_folds, cores, expected):
    side = folds_side_by_side(n_folds, cores)
    assert side == expected
    waves = -(-n_folds // side)
    assert waves <= max(1, n_folds // cores), "no more waves than the cores make necessary"


class EpochObjective(MeanObjective):
    """Reports ``epochs`` steps per fold; the last fold of a wave runs fastest.

    Fold i's epoch e reports the value ``i + e / 10``; fold i sleeps
    ``(3 - i) * 5`` ms an epoch, so later folds finish first when folds run
    side by side. Records the epochs each fold ran.
    """

    def __init__(self, epochs: int = 4):
        super().__init__()
        self.epochs = epochs
        self.ran: dict[int, int] = {}

    def max_steps(self, params):
        return self.epochs

    def fit_predict(self, params, fold, report=None):
        index = fold.seed  # seed + fold index, seed 0
        for epoch in range(self.epochs):
            time.sleep((3 - index) * 0.005)
            self.ran[index] = epoch + 1
            if report is not None and report(epoch, index + epoch / 10):
                break
        return super().fit_predict(params, fold, report)


def test_epoch_reports_of_side_by_side_folds_are_judged_in_step_order():
    """As if the folds ran one after another: same steps, same values, same order."""
    data = regression_data()
    folds = _kfold(data, 3)
    judged: dict[int, list[tuple[int, float]]] = {}
    for n_jobs in (1, 3):
        calls = judged.setdefault(n_jobs, [])
        cross_validate(
            EpochObjective(),
            {},
            CVSetup(data, folds, get_metric("rmse"), seed=0, n_jobs=n_jobs),
            should_prune=lambda s, v, calls=calls: calls.append((s, v)) or False,
        )
    expected = [(i * 4 + e, pytest.approx(i + e / 10)) for i in range(3) for e in range(4)]
    assert judged[1] == expected
    assert judged[3] == expected, "fold 2 finished first, yet was judged last"


def pruned_side_by_side(objective: EpochObjective, from_step: int) -> FoldsPruned:
    """Three folds at once, pruned at the first step >= ``from_step``: the exception."""
    data = regression_data()
    with pytest.raises(FoldsPruned) as err:
        cross_validate(
            objective,
            {},
            CVSetup(data, _kfold(data, 3), get_metric("rmse"), seed=0, n_jobs=3),
            should_prune=lambda s, v: s >= from_step,
        )
    return err.value


def test_a_later_folds_report_prunes_at_its_own_step_and_names_its_fold():
    """Pruned at fold 1's epoch 2 (step 6): fold 0's steps were all judged first."""
    objective = EpochObjective()
    pruned = pruned_side_by_side(objective, from_step=6)
    assert str(pruned) == "pruned at epoch 3 of fold 1"
    info = pruned.result.fit_facts
    assert (info["pruned_fold"], info["pruned_epoch"]) == (1, 3)
    assert objective.ran[0] == 4, "fold 0 ran to its end: none of its steps prunes"


def test_a_first_fold_report_that_prunes_stops_the_folds_beside_it():
    objective = EpochObjective(epochs=50)
    pruned = pruned_side_by_side(objective, from_step=1)
    assert str(pruned) == "pruned at epoch 2 of fold 0"
    assert objective.ran[0] == 2
    assert max(objective.ran.values()) < 50, "the folds beside it stopped early"


@pytest.mark.parametrize("objective", [MeanObjective, EpochObjective])
def test_a_paired_pruner_sees_each_fold_s_own_score_at_its_fold(objective) -> None:
    """pruner=wilcoxon (CVSetup.fold_scores): one report per fold, the fold's own score, even
    from an objective that reports epochs; step = fold index in every trial."""
    data = regression_data()
    folds = _kfold(data, 3)
    calls: list[tuple[int, float]] = []
    result = cross_validate(
        objective(),
        {},
        CVSetup(data, folds, get_metric("rmse"), seed=0, fold_scores=True),
        should_prune=lambda step, value: calls.append((step, value)) or False,
    )
    assert calls == [(k, pytest.approx(v)) for k, v in enumerate(result.fold_values)]


def test_only_the_wilcoxon_pruner_is_told_fold_scores() -> None:
    import optuna

    from hpo.pruning import fold_scores

    assert fold_scores(optuna.pruners.WilcoxonPruner())
    assert not fold_scores(optuna.pruners.MedianPruner())
    assert not fold_scores(optuna.pruners.SuccessiveHalvingPruner())


class CompressedMean(MeanObjective):
    """MeanObjective as if compressed: its scores are the training mean + 1, its reference
    scores (before compression) the mean itself, so compression costs RMSE on every fold."""

    def fit_predict(self, params, fold, report=None):
        out = super().fit_predict(params, fold, report)
        return FoldOutput(out.scores + 1.0, out.fit_facts, reference_scores=out.scores)


@pytest.mark.parametrize(
    ("direction", "sign"), [(None, 1.0), ("minimize", 1.0), ("maximize", -1.0)]
)
def test_the_metric_drop_is_signed_by_the_study_s_direction(direction, sign) -> None:
    """RMSE is better lower: compression raised it, a drop (positive) for a study that
    minimizes it as the metric says, and a gain (negative) for one stated to maximize it."""
    data = regression_data()
    setup = CVSetup(data, _kfold(data, 2), get_metric("rmse"), seed=0, direction=direction)
    result = cross_validate(CompressedMean(), {}, setup)
    uncompressed = result.fit_facts["metric_uncompressed"]
    assert result.value > uncompressed
    assert result.fit_facts["metric_drop"] == pytest.approx(sign * (result.value - uncompressed))


def test_the_plan_gives_the_cv_harness_the_study_s_direction(make_cfg) -> None:
    """A direction stated against the metric's (kept, and warned of) signs the drop."""
    from hpo.runner import make_plan

    cfg = make_cfg("study=tiny_prior", "study.metric=log_loss", "study.direction=maximize")
    assert make_plan(cfg).cv_setup.direction == "maximize"
    assert make_plan(make_cfg("study=tiny_prior", "study.metric=log_loss")).cv_setup.direction == (
        "minimize"
    )
