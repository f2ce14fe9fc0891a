import re

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from objectives.base import FoldData
from objectives.xgboost import XGBoostObjective

MAX_ROUNDS = 40
PARAMS = {"max_depth": 3, "eta": 0.3}


def objective(task="classification"):
    return XGBoostObjective(task=task, max_rounds=MAX_ROUNDS, early_stopping_rounds=5, nthread=1)


def fold(n_classes=2, n=300, n_valid=60, seed=0):
    if n_classes:
        X, y = make_classification(
            n_samples=n,
            n_features=6,
            n_informative=4,
            n_classes=n_classes,
            random_state=seed,
        )
    else:
        X, y = make_regression(n_samples=n, n_features=5, noise=5.0, random_state=seed)
    X = X.astype(np.float32)
    return FoldData(X[n_valid:], y[n_valid:], X[:n_valid], n_classes, seed), y[:n_valid]


def test_binary_scores_are_probabilities():
    data, y_valid = fold()
    out = objective().fit_predict(PARAMS, data)
    assert out.scores.shape == (len(data.X_valid),)
    assert ((out.scores >= 0) & (out.scores <= 1)).all()
    assert np.mean((out.scores >= 0.5) == y_valid) > 0.7  # it learned something


def test_n_rounds_is_chosen_by_early_stopping():
    data, _ = fold()
    out = objective().fit_predict(PARAMS, data)
    n_rounds = out.fit_facts["n_rounds"]
    assert n_rounds == int(n_rounds)
    assert 1 <= n_rounds <= MAX_ROUNDS
    curve = out.curves["inner_valid_loss"]
    assert n_rounds <= len(curve) <= MAX_ROUNDS
    assert curve[int(n_rounds) - 1] == pytest.approx(min(curve))


def test_multiclass_scores_are_a_probability_matrix():
    data, y_valid = fold(n_classes=3)
    out = objective().fit_predict(PARAMS, data)
    assert out.scores.shape == (len(data.X_valid), 3)
    assert out.scores.sum(axis=1) == pytest.approx(np.ones(len(data.X_valid)), abs=1e-5)
    assert np.mean(out.scores.argmax(axis=1) == y_valid) > 0.5  # chance is 1/3


def test_regression_predicts_values():
    data, y_valid = fold(n_classes=0)
    out = objective("regression").fit_predict(PARAMS, data)
    assert out.scores.shape == (len(data.X_valid),)
    ss_res = np.sum((y_valid - out.scores) ** 2)
    ss_tot = np.sum((y_valid - y_valid.mean()) ** 2)
    assert 1 - ss_res / ss_tot > 0.5
    assert 1 <= out.fit_facts["n_rounds"] <= MAX_ROUNDS


@pytest.mark.parametrize("n_classes", [2, 3, 0])
def test_early_stopping_never_sees_the_scored_rows(n_classes):
    """The rounds and the stopping curve depend on the training fold only."""
    task = "regression" if n_classes == 0 else "classification"
    data, _ = fold(n_classes)
    rng = np.random.default_rng(0)
    other = rng.normal(size=(25, data.X_valid.shape[1])).astype(np.float32)
    shuffled = data.X_valid[rng.permutation(len(data.X_valid))]

    outs = [
        objective(task).fit_predict(PARAMS, FoldData(data.X_train, data.y_train, X, n_classes, 0))
        for X in (data.X_valid, shuffled, other)
    ]
    assert len({o.fit_facts["n_rounds"] for o in outs}) == 1
    assert outs[1].curves == outs[0].curves == outs[2].curves


def test_a_rows_prediction_does_not_depend_on_the_other_validation_rows():
    data, _ = fold()
    perm = np.random.default_rng(1).permutation(len(data.X_valid))
    model = objective()

    full = model.fit_predict(PARAMS, data).scores
    shuffled = model.fit_predict(
        PARAMS, FoldData(data.X_train, data.y_train, data.X_valid[perm], 2, 0)
    ).scores
    subset = model.fit_predict(
        PARAMS, FoldData(data.X_train, data.y_train, data.X_valid[:7], 2, 0)
    ).scores
    np.testing.assert_array_equal(shuffled, full[perm])
    np.testing.assert_array_equal(subset, full[:7])


def test_the_fold_seed_changes_the_inner_split():
    data, _ = fold()
    a = objective().fit_predict(PARAMS, data).curves["inner_valid_loss"]
    b = (
        objective()
        .fit_predict(PARAMS, FoldData(data.X_train, data.y_train, data.X_valid, 2, seed=1))
        .curves["inner_valid_loss"]
    )
    assert a != b


def test_user_params_override_the_defaults():
    params = objective().booster_params({"max_depth": 2, "eval_metric": "auc"}, 2, seed=5)
    assert params["max_depth"] == 2
    assert params["eval_metric"] == "auc"
    assert params["objective"] == "binary:logistic"
    assert params["seed"] == 5


@pytest.mark.parametrize(
    ("task", "n_classes", "expected"),
    [
        ("classification", 2, "binary:logistic"),
        ("classification", 4, "multi:softprob"),
        ("regression", 0, "reg:squarederror"),
    ],
)
def test_learning_objective_follows_the_task(task, n_classes, expected):
    params = objective(task).booster_params({}, n_classes, seed=0)
    assert params["objective"] == expected
    assert params.get("num_class") == (n_classes if n_classes > 2 else None)


def test_refit_scales_the_rounds_to_the_full_data_and_predicts_probabilities():
    data, _ = fold()
    model = objective().refit(PARAMS, data.X_train, data.y_train, 2, {"n_rounds": 12.0}, seed=0)
    # 12 rounds on 80% of a fold become 15 on all of it.
    assert model.num_boosted_rounds() == 15
    scores = objective().predict(model, data.X_valid)
    assert scores.shape == (len(data.X_valid),)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_refit_multiclass_predicts_a_probability_matrix():
    data, y_valid = fold(n_classes=3)
    model = objective().refit(PARAMS, data.X_train, data.y_train, 3, {"n_rounds": 8.0}, seed=0)
    scores = objective().predict(model, data.X_valid)
    assert scores.shape == (len(data.X_valid), 3)
    assert scores.sum(axis=1) == pytest.approx(np.ones(len(data.X_valid)), abs=1e-5)
    assert np.mean(scores.argmax(axis=1) == y_valid) > 0.5


def test_refit_regression_predicts_values():
    data, y_valid = fold(n_classes=0)
    reg = objective("regression")
    model = reg.refit(PARAMS, data.X_train, data.y_train, 0, {"n_rounds": 20.0}, seed=0)
    scores = reg.predict(model, data.X_valid)
    assert scores.shape == (len(data.X_valid),)
    assert np.corrcoef(scores, y_valid)[0, 1] > 0.7


def test_boosting_ends_when_the_harness_says_the_trial_is_over():
    data, _ = fold()
    data.stopped = lambda: True  # a fold beside this one was pruned
    out = XGBoostObjective(max_rounds=MAX_ROUNDS, early_stopping_rounds=MAX_ROUNDS).fit_predict(
        PARAMS, data
    )
    assert len(out.curves["inner_valid_loss"]) == 1


def test_the_fit_uses_the_threads_the_harness_gives(monkeypatch):
    import xgboost as xgb

    seen: list[int] = []
    train = xgb.train
    monkeypatch.setattr(
        xgb, "train", lambda p, *a, **k: seen.append(p["nthread"]) or train(p, *a, **k)
    )
    data, _ = fold()
    data.threads = 3
    XGBoostObjective().fit_predict(PARAMS, data)
    assert seen == [3]


def reporting(every=10, max_rounds=MAX_ROUNDS, early_stopping_rounds=50):
    return XGBoostObjective(
        max_rounds=max_rounds,
        early_stopping_rounds=early_stopping_rounds,
        nthread=1,
        report_every=every,
    )


def test_without_report_every_the_harness_prunes_after_whole_folds():
    assert objective().max_steps(PARAMS) is None
    assert reporting(every=15).max_steps(PARAMS) == 3  # rounds 15, 30, 40


def test_reports_the_study_metric_of_the_best_round_every_n_rounds():
    from sklearn.metrics import average_precision_score

    data, _ = fold()
    data.metric = average_precision_score
    reports = []
    out = reporting(every=15).fit_predict(
        PARAMS, data, lambda step, value: reports.append((step, value)) or False
    )
    assert [step for step, _ in reports] == [0, 1, 2]
    assert all(0 < value <= 1 for _, value in reports)
    # the last report scores the model the fold returns (early stopping's best round)
    assert out.fit_facts["n_rounds"] <= MAX_ROUNDS


def test_an_early_stopped_fold_still_ends_at_the_last_step():
    data, _ = fold()
    data.metric = lambda y, s: float(np.mean((s >= 0.5) == y))
    steps = []
    objective = reporting(every=2, max_rounds=400, early_stopping_rounds=3)
    out = objective.fit_predict(PARAMS, data, lambda step, value: steps.append(step) or False)
    assert out.fit_facts["n_rounds"] < 400, "early stopping should end this fold before 400 rounds"
    assert steps[-1] == objective.max_steps(PARAMS) - 1 == 199
    assert steps[:-1] == list(range(len(steps) - 1))


def test_a_pruned_report_ends_boosting_at_once():
    data, _ = fold()
    data.metric = lambda y, s: 0.5
    steps = []

    def prune_at_second(step, value):
        steps.append(step)
        return step == 1

    out = reporting(every=5).fit_predict(PARAMS, data, prune_at_second)
    assert steps == [0, 1], "no report after the pruner said stop"
    assert len(out.curves["inner_valid_loss"]) == 10


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("task", "ranking"),
        ("max_rounds", 0),
        ("max_rounds", "abc"),
        ("early_stopping_rounds", 0),
        ("inner_valid_fraction", 1.0),
        ("max_bin", 1),
        ("nthread", -1),
        ("report_every", 0),
    ],
)
def test_validate_refuses_a_bad_fixed_setting_by_its_key(key, value):
    from objectives.base import BadSetting

    with pytest.raises(BadSetting, match="^" + re.escape(f"study.objective.{key}={value!r} ")):
        XGBoostObjective(**{key: value}).validate()


def test_validate_passes_the_defaults_and_the_studies_settings():
    XGBoostObjective().validate()
    XGBoostObjective(max_bin=16, report_every=10, early_stopping_rounds=10).validate({"x": (1, 2)})
