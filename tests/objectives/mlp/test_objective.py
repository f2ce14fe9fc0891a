"""The MLP objective on tiny data: validation, the unseen scored rows, stopping, reports, refit."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from objectives.base import BadSetting, FoldData
from objectives.mlp.objective import MLPObjective
from tests.objectives.helpers import MLP_FAST as FAST
from tests.objectives.helpers import fold


def mlp(task: str = "classification", **settings) -> MLPObjective:
    return MLPObjective(task=task, **settings)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"init": "foo"}, "study.objective.init='foo' is not one of auto, he, xavier"),
        ({"max_epochs": 0}, "study.objective.max_epochs=0 is not a whole number >= 1"),
        ({"max_epochs": "abc"}, "study.objective.max_epochs='abc' is not a whole number"),
        ({"lr": -1.0}, "study.objective.lr=-1.0 is not a number > 0"),
        ({"nesterov": "yes"}, "study.objective.nesterov='yes' is not true or false"),
        ({"task": "ranking"}, "study.objective.task='ranking' is not one of"),
        ({"inner_valid_fraction": 1.0}, "study.objective.inner_valid_fraction=1.0"),
    ],
)
def test_validate_refuses_a_bad_fixed_setting_by_its_key(settings, expected):
    with pytest.raises(BadSetting, match=re.escape(expected)):
        MLPObjective(**settings).validate()


def test_validate_refuses_a_value_the_space_can_give():
    with pytest.raises(BadSetting, match=r"study.space.activation offers activation='foo'"):
        mlp().validate({"activation": ("relu", "foo")})
    with pytest.raises(BadSetting, match=r"study.space.dropout offers dropout=1.5"):
        mlp().validate({"dropout": (0.0, 1.5)})
    with pytest.raises(BadSetting, match=r"study.space.width_2 offers width_2=0"):
        mlp().validate({"width_2": (0, 8)})
    with pytest.raises(BadSetting, match=r"study.space.depth is not a setting of the MLP"):
        mlp().validate({"depth": (1, 3)})
    mlp().validate(
        {"activation": ("relu", "gelu", "silu", "tanh"), "width_1": (8, 64), "lr": (1e-4, 0.1)}
    )


@pytest.mark.parametrize("n_classes", [2, 0])
def test_nothing_is_learned_from_the_validation_rows(n_classes):
    """Scaler and training see the training rows only: other validation rows change nothing."""
    task = "regression" if n_classes == 0 else "classification"
    data, _ = fold(n_classes)
    shifted = data.X_valid * 100 + 1000  # a scaler fit on these rows would move every feature
    other = FoldData(data.X_train, data.y_train, shifted, n_classes, data.seed, 1, data.metric)
    a = mlp(task, **FAST).fit_predict({}, data)
    b = mlp(task, **FAST).fit_predict({}, other)
    assert a.curves == b.curves
    model = mlp(task, **FAST).refit({}, data.X_train, data.y_train, n_classes, {}, 0)
    assert model.x_mean.numpy() == pytest.approx(data.X_train.mean(axis=0), rel=1e-4)
    subset = mlp(task, **FAST).fit_predict(
        {}, FoldData(data.X_train, data.y_train, data.X_valid[:7], n_classes, 0, 1, data.metric)
    )
    np.testing.assert_allclose(subset.scores, a.scores[:7], rtol=1e-6)


def test_same_seed_same_result_even_with_dropout_in_parallel_threads():
    data, _ = fold()
    objective = mlp(**FAST)
    params = {"dropout": 0.3}
    first = objective.fit_predict(params, data)
    with ThreadPoolExecutor(2) as pool:
        again = list(pool.map(lambda _: objective.fit_predict(params, data), range(2)))
    for out in again:
        np.testing.assert_array_equal(out.scores, first.scores)
        assert out.curves == first.curves
    other = objective.fit_predict(
        params, FoldData(data.X_train, data.y_train, data.X_valid, 2, 1, 1, data.metric)
    )
    assert other.curves != first.curves


def test_early_stopping_keeps_the_best_epoch_and_curves_per_epoch():
    data, _ = fold()
    out = mlp(max_epochs=60, patience=2, width=16).fit_predict({"lr": 0.05}, data)
    run, best = out.fit_facts["epochs_run"], out.fit_facts["best_epoch"]
    assert run < 60, "stopped early"
    assert run == best + 2
    valid = out.curves["inner_valid_loss"]
    assert (
        len(valid)
        == len(out.curves["train_loss"])
        == len(out.curves["inner_valid_accuracy"])
        == run
    )
    assert valid[int(best) - 1] == pytest.approx(min(valid))
    assert out.fit_facts["n_params"] == (6 * 16 + 16) * 1 + (16 * 16 + 16) + 17


def test_reports_each_epoch_and_the_last_step_when_stopping_early():
    data, _ = fold()
    steps: list[tuple[int, float]] = []
    out = mlp(max_epochs=60, patience=2, width=16).fit_predict(
        {"lr": 0.05}, data, lambda s, v: steps.append((s, v)) or False
    )
    run = int(out.fit_facts["epochs_run"])
    assert [s for s, _ in steps] == [*range(run), 59]
    best = int(out.fit_facts["best_epoch"])
    accuracy = out.curves["inner_valid_accuracy"]
    assert steps[-1][1] == accuracy[best - 1]  # the value of the model the fold returns
    assert steps[run - 1][1] == accuracy[best - 1]


def test_a_pruned_fold_stops_at_once():
    data, _ = fold()
    out = mlp(max_epochs=20, width=16).fit_predict({}, data, lambda step, value: step >= 1)
    assert out.fit_facts["epochs_run"] == 2
    assert len(out.curves["train_loss"]) == 2


def test_a_fold_stops_after_the_epoch_in_which_the_trial_ended_elsewhere():
    data, _ = fold()
    ended = iter([False, False, True])  # asked once per epoch
    data.stopped = lambda: next(ended)
    out = mlp(max_epochs=20, width=16).fit_predict({}, data)
    assert out.fit_facts["epochs_run"] == 3
    assert len(out.curves["inner_valid_loss"]) == 2


def test_max_steps_is_max_epochs():
    assert mlp(max_epochs=7).max_steps({}) == 7
    assert mlp(max_epochs=7).max_steps({"max_epochs": 9}) == 9


def test_refit_trains_for_the_folds_best_epoch_and_predicts_like_fit():
    data, y_valid = fold(3, n=300)
    objective = mlp(max_epochs=30, width=32)
    model = objective.refit({"lr": 0.01}, data.X_train, data.y_train, 3, {"best_epoch": 12.4}, 0)
    scores = objective.predict(model, data.X_valid)
    assert scores.shape == (50, 3)
    assert np.mean(scores.argmax(axis=1) == y_valid) > 0.5
    raw = model(torch.as_tensor(data.X_valid)).detach().numpy()
    np.testing.assert_allclose(raw, scores, rtol=1e-6)  # the module alone is the whole pipeline
