"""The MLP objective on tiny data: each knob, the scaler, early stopping, reports, determinism."""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from torch import nn

from hpo.metrics import get_metric
from objectives.base import FoldData
from objectives.mlp import (
    OPTIMIZERS,
    SCHEDULES,
    GeneratorDropout,
    Knobs,
    MLPObjective,
    _EarlyStopping,
    build_network,
    make_optimizer,
    make_schedule,
)

FAST = {"max_epochs": 3, "width": 16, "batch_size": 32}


def fold(n_classes: int = 2, n: int = 200, n_valid: int = 50, seed: int = 0, metric: bool = True):
    """A FoldData (with the study metric) and the validation labels the objective never sees."""
    if n_classes:
        X, y = make_classification(
            n_samples=n, n_features=6, n_informative=4, n_classes=n_classes, random_state=seed
        )
        score = get_metric("accuracy", "classification")
    else:
        X, y = make_regression(n_samples=n, n_features=5, noise=5.0, random_state=seed)
        y = y + 100.0  # far from zero: the target must be standardized to learn quickly
        score = get_metric("rmse", "regression")
    X = (X * 10 + 3).astype(np.float32)  # unscaled features: the scaler must matter
    data = FoldData(
        X[n_valid:], y[n_valid:], X[:n_valid], n_classes, seed, 1, score if metric else None
    )
    return data, y[:n_valid]


def mlp(task: str = "classification", **settings) -> MLPObjective:
    return MLPObjective(task=task, **settings)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_learns(optimizer):
    data, y_valid = fold()
    out = mlp(max_epochs=12, width=16, batch_size=32).fit_predict(
        {"optimizer": optimizer, "lr": 0.03, "weight_decay": 1e-4}, data
    )
    curve = out.curves["train_loss"]
    assert curve[-1] < curve[0]
    assert np.mean((out.scores >= 0.5) == y_valid) > 0.7


def test_optimizers_are_torchs_with_the_settings():
    params = [nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(Knobs(optimizer="sgd", lr=0.1, momentum=0.8, weight_decay=0.01), params)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8
    assert sgd.defaults["weight_decay"] == 0.01
    adamw = make_optimizer(Knobs(optimizer="adamw", lr=0.1, weight_decay=0.05), params)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.05
    assert isinstance(make_optimizer(Knobs(optimizer="radam"), params), torch.optim.RAdam)
    assert isinstance(make_optimizer(Knobs(optimizer="adam"), params), torch.optim.Adam)


def _lrs(schedule: str, epochs: int = 10, batches: int = 4) -> list[float]:
    """The learning rate at the start of each epoch under ``schedule``."""
    knobs = Knobs(schedule=schedule, lr=0.1, max_epochs=epochs, step_size=3, step_gamma=0.5)
    optimizer = make_optimizer(knobs, [nn.Parameter(torch.zeros(1))])
    scheduler, per_batch = make_schedule(knobs, optimizer, batches)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        for _ in range(batches if per_batch else 1):
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
    return lrs


def test_each_schedule_shapes_the_learning_rate():
    assert _lrs("none") == [0.1] * 10
    assert _lrs("step")[:7] == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025])
    exponential = _lrs("exponential")
    assert exponential[1] == pytest.approx(0.1 * 0.95)
    cosine = _lrs("cosine")
    assert cosine[0] == pytest.approx(0.1) and cosine[-1] < 0.01
    onecycle = _lrs("onecycle")
    peak = int(np.argmax(onecycle))
    assert 0 < peak < 9 and onecycle[0] < 0.1 * 0.1 and onecycle[-1] < onecycle[peak] / 10


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_each_schedule_trains(schedule):
    data, _ = fold()
    out = mlp(**FAST).fit_predict({"schedule": schedule}, data)
    assert len(out.curves["train_loss"]) == 3
    assert np.isfinite(out.scores).all()


@pytest.mark.parametrize(
    ("norm", "layer"), [("none", None), ("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)]
)
def test_each_normalization(norm, layer):
    knobs = Knobs(norm=norm, n_layers=2, width=8)
    net = build_network(knobs, 4, 1, torch.Generator().manual_seed(0))
    found = [type(m) for m in net if isinstance(m, nn.BatchNorm1d | nn.LayerNorm)]
    assert found == ([layer, layer] if layer else [])
    data, _ = fold(n=201)  # 151 training rows: a last batch of one row would break batch norm
    out = mlp(**FAST).fit_predict({"norm": norm, "batch_size": 30}, data)
    assert np.isfinite(out.scores).all()


def _first_weights(init: str, activation: str) -> torch.Tensor:
    knobs = Knobs(init=init, activation=activation, n_layers=1, width=200)
    net = build_network(knobs, 100, 1, torch.Generator().manual_seed(0))
    assert isinstance(net[0], nn.Linear)
    return net[0].weight.detach()


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_he_and_xavier_initialization_bounds(activation):
    he = _first_weights("he", activation)
    xavier = _first_weights("xavier", activation)
    he_bound = math.sqrt(6 / 100)  # kaiming_uniform, relu gain sqrt(2): sqrt(2) * sqrt(3 / fan_in)
    gain = 5 / 3 if activation == "tanh" else math.sqrt(2)
    xavier_bound = gain * math.sqrt(6 / (100 + 200))
    assert he.abs().max() <= he_bound and he.abs().max() > 0.95 * he_bound
    assert xavier.abs().max() <= xavier_bound and xavier.abs().max() > 0.95 * xavier_bound


def test_auto_initialization_matches_the_activation():
    assert torch.equal(_first_weights("auto", "tanh"), _first_weights("xavier", "tanh"))
    assert torch.equal(_first_weights("auto", "relu"), _first_weights("he", "relu"))
    assert torch.equal(_first_weights("auto", "gelu"), _first_weights("he", "gelu"))


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "tanh"])
def test_each_activation_trains(activation):
    data, _ = fold()
    out = mlp(**FAST).fit_predict({"activation": activation}, data)
    assert np.isfinite(out.scores).all()


def test_per_layer_widths_override_the_shared_width():
    objective = mlp()
    knobs = objective.knobs({"n_layers": 3, "width": 8, "width_1": 32, "width_3": 4})
    net = build_network(knobs, 5, 1, torch.Generator().manual_seed(0))
    linear = [m for m in net if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linear] == [32, 8, 4, 1]


def test_unknown_or_impossible_settings_are_refused_with_the_name():
    with pytest.raises(ValueError, match="unknown MLP parameter 'depth'"):
        mlp().knobs({"depth": 3})
    with pytest.raises(ValueError, match="optimizer='lbfgs'"):
        mlp().knobs({"optimizer": "lbfgs"})
    with pytest.raises(ValueError, match="dropout"):
        mlp().knobs({"dropout": 1.0})


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
    from objectives.base import BadSetting

    with pytest.raises(BadSetting, match=re.escape(expected)):
        MLPObjective(**settings).validate()


def test_validate_refuses_a_value_the_space_can_give():
    from objectives.base import BadSetting

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


def test_gradient_clipping_limits_each_step():
    """SGD without momentum moves each step by at most lr * clip_norm when clipping is on."""
    data, _ = fold()
    settings = {"optimizer": "sgd", "momentum": 0.0, "lr": 1.0, "max_epochs": 1, "batch_size": 30}
    objective = mlp(width=16)
    clipped = objective.refit(settings | {"clip_norm": 1e-6}, data.X_train, data.y_train, 2, {}, 0)
    free = objective.refit(settings, data.X_train, data.y_train, 2, {}, 0)
    untrained = build_network(objective.knobs(settings), 6, 1, torch.Generator().manual_seed(0))

    def distance(model):
        return sum(
            (a - b).abs().sum().item()
            for a, b in zip(model.net.parameters(), untrained.parameters(), strict=True)
        )

    assert distance(clipped) < 1e-4 < distance(free)


# --- the scaler, the inner split and the scored fold -----------------------------


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


def test_scores_have_the_shape_the_metrics_expect():
    binary, _ = fold(2)
    multi, y_multi = fold(3, n=300)
    reg, y_reg = fold(0)
    p = mlp(**FAST).fit_predict({}, binary).scores
    assert p.shape == (50,) and ((p >= 0) & (p <= 1)).all()
    m = mlp(max_epochs=10, width=32).fit_predict({"lr": 0.01}, multi).scores
    assert m.shape == (50, 3) and m.sum(axis=1) == pytest.approx(np.ones(50), abs=1e-5)
    assert np.mean(m.argmax(axis=1) == y_multi) > 0.5  # chance is 1/3
    r = mlp("regression", max_epochs=20, width=32).fit_predict({"lr": 0.01}, reg).scores
    assert r.shape == (50,)
    assert abs(np.mean(r) - np.mean(y_reg)) < 0.5 * np.std(y_reg)  # in the target's units


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


def test_dropout_draws_from_its_generator_only_in_training():
    drop = GeneratorDropout(0.5)
    x = torch.ones(1000)
    drop.generator = torch.Generator().manual_seed(0)
    a = drop(x)
    drop.generator = torch.Generator().manual_seed(0)
    assert torch.equal(a, drop(x))
    assert 0.3 < (a == 0).float().mean() < 0.7 and a.max() == 2.0
    drop.eval()
    assert torch.equal(drop(x), x)


# --- early stopping, curves, reports -------------------------------------------------


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


def test_a_diverging_loss_ends_the_fit_with_the_reason():
    data, _ = fold(0)
    with pytest.raises(FloatingPointError, match="lower lr"):
        mlp("regression", **FAST).fit_predict({"optimizer": "sgd", "lr": 1e12}, data)


def _stopping(y_stop: np.ndarray | None = None) -> tuple[_EarlyStopping, nn.Module]:
    data, _ = fold(0)
    objective = mlp("regression", width=8, max_epochs=10)
    knobs = objective.knobs({})
    model = objective._pipeline(knobs, data.X_train, data.y_train, 0, torch.Generator())
    y = data.y_train[:40] if y_stop is None else y_stop
    return _EarlyStopping(model, knobs, data.X_train[:40], y, data.metric, None), model


def test_the_best_weights_are_a_copy_restored_at_the_end():
    stop, model = _stopping()
    history: dict[str, list[float]] = {}
    stop.after_epoch(model, 1, history)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-3.0)  # in place: a kept reference instead of a copy would follow
    stop.after_epoch(model, 2, history)
    assert history["inner_valid_loss"][1] > history["inner_valid_loss"][0]
    assert stop.best_epoch == 1
    stop.restore(model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, best[key]), key


def test_a_non_finite_inner_validation_loss_ends_the_fit_with_the_reason():
    huge = np.full(40, 1e300)  # beyond float32 once standardized: the loss is inf
    stop, model = _stopping(huge)
    with pytest.raises(FloatingPointError, match="inner validation loss is inf at epoch 3"):
        stop.after_epoch(model, 3, {})


def test_max_steps_is_max_epochs():
    assert mlp(max_epochs=7).max_steps({}) == 7
    assert mlp(max_epochs=7).max_steps({"max_epochs": 9}) == 9


# --- refit -----------------------------------------------------------------------


def test_refit_trains_for_the_folds_best_epoch_and_predicts_like_fit():
    data, y_valid = fold(3, n=300)
    objective = mlp(max_epochs=30, width=32)
    model = objective.refit({"lr": 0.01}, data.X_train, data.y_train, 3, {"best_epoch": 12.4}, 0)
    scores = objective.predict(model, data.X_valid)
    assert scores.shape == (50, 3)
    assert np.mean(scores.argmax(axis=1) == y_valid) > 0.5
    raw = model(torch.as_tensor(data.X_valid)).detach().numpy()
    np.testing.assert_allclose(raw, scores, rtol=1e-6)  # the module alone is the whole pipeline
