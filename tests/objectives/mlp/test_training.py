"""How the MLP trains: each optimizer and schedule, clipping, divergence, the inner split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from objectives.mlp.knobs import OPTIMIZERS, SCHEDULES, MLPKnobs
from objectives.mlp.network import build_network
from objectives.mlp.objective import MLPObjective
from objectives.mlp.training import InnerValidation, make_optimizer, make_schedule
from objectives.torch_fit import EarlyStopping
from tests.objectives.helpers import MLP_FAST as FAST
from tests.objectives.helpers import fold


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
    sgd = make_optimizer(MLPKnobs(optimizer="sgd", lr=0.1, momentum=0.8, weight_decay=0.01), params)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8
    assert sgd.defaults["weight_decay"] == 0.01
    adamw = make_optimizer(MLPKnobs(optimizer="adamw", lr=0.1, weight_decay=0.05), params)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.05
    assert isinstance(make_optimizer(MLPKnobs(optimizer="radam"), params), torch.optim.RAdam)
    assert isinstance(make_optimizer(MLPKnobs(optimizer="adam"), params), torch.optim.Adam)


def _lrs(schedule: str, epochs: int = 10, batches: int = 4) -> list[float]:
    """The learning rate at the start of each epoch under ``schedule``."""
    knobs = MLPKnobs(schedule=schedule, lr=0.1, max_epochs=epochs, step_size=3, step_gamma=0.5)
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


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "tanh"])
def test_each_activation_trains(activation):
    data, _ = fold()
    out = mlp(**FAST).fit_predict({"activation": activation}, data)
    assert np.isfinite(out.scores).all()


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


def test_a_diverging_loss_ends_the_fit_with_the_reason():
    data, _ = fold(0)
    with pytest.raises(FloatingPointError, match="lower lr"):
        mlp("regression", **FAST).fit_predict({"optimizer": "sgd", "lr": 1e12}, data)


def _stopping(y_stop: np.ndarray | None = None) -> tuple[EarlyStopping, nn.Module]:
    data, _ = fold(0)
    objective = mlp("regression", width=8, max_epochs=10)
    knobs = objective.knobs({})
    model = objective._pipeline(knobs, data.X_train, data.y_train, 0, torch.Generator())
    y = data.y_train[:40] if y_stop is None else y_stop
    inner = InnerValidation(model, data.X_train[:40], y, data.metric)
    return EarlyStopping(inner, knobs.max_epochs), model


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
