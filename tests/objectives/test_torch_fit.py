"""The shared torch frame: generator-driven dropout, early stopping, the epoch loop, threads."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from objectives.mlp.objective import MLPObjective
from objectives.torch_fit import (
    EarlyStopping,
    Epochs,
    Evaluation,
    GeneratorDropout,
    run_epochs,
    use_threads,
)


def mlp(task: str = "classification", **settings) -> MLPObjective:
    return MLPObjective(task=task, **settings)


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


# --- early stopping, on a stand-in model whose inner losses are scripted --------------


def scripted(losses: list[float], values: list[float] | None = None):
    """An Evaluate that returns the given losses (and metric values) epoch after epoch."""

    def evaluate(model: nn.Module, epoch: int) -> Evaluation:
        value = None if values is None else values[epoch - 1]
        return Evaluation(losses[epoch - 1], value, {"inner_valid_x": float(epoch)})

    return evaluate


def drive(stop: Epochs, model: nn.Module, epochs: int) -> tuple[int, dict[str, list[float]]]:
    """Call after_epoch as run_epochs does; the epoch it stopped at, and the curves."""
    history: dict[str, list[float]] = {}
    for epoch in range(1, epochs + 1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # type: ignore[operator]
        if stop.after_epoch(model, epoch, history):
            return epoch, history
    return epochs, history


def test_patience_stops_and_the_last_step_is_reported_with_the_best_value():
    reports: list[tuple[int, float]] = []
    losses = [3.0, 1.0, 2.0, 2.5, 2.7, 0.1]
    values = [0.3, 0.9, 0.5, 0.4, 0.2, 1.0]
    stop = EarlyStopping(
        scripted(losses, values), 6, lambda s, v: reports.append((s, v)) or False, 2
    )
    model = nn.Linear(1, 1)
    stopped_at, history = drive(stop, model, 6)
    assert stopped_at == 4 and stop.best_epoch == 2
    assert reports == [(0, 0.3), (1, 0.9), (2, 0.9), (3, 0.9), (5, 0.9)]
    assert history == {"inner_valid_loss": losses[:4], "inner_valid_x": [1.0, 2.0, 3.0, 4.0]}
    stop.restore(model)
    assert model.weight.item() == 2.0  # the best epoch's weights, not the last


def test_without_a_metric_the_loss_is_reported_and_a_pruner_stops_at_once():
    reports: list[tuple[int, float]] = []
    stop = EarlyStopping(
        scripted([2.0, 1.0, 0.5]), 3, lambda s, v: reports.append((s, v)) or s >= 1
    )
    stopped_at, _ = drive(stop, nn.Linear(1, 1), 3)
    assert stopped_at == 2 and reports == [(0, 2.0), (1, 1.0)]


def test_a_trial_ended_elsewhere_stops_before_evaluating():
    ended = iter([False, True])
    stop = EarlyStopping(scripted([2.0, 1.0, 0.5]), 3, stopped=lambda: next(ended))
    stopped_at, history = drive(stop, nn.Linear(1, 1), 3)
    assert stopped_at == 2 and history["inner_valid_loss"] == [2.0]


def test_trainable_only_keeps_and_restores_the_trainable_parameters_only():
    model = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1))
    model[0].requires_grad_(False)  # a frozen base
    stop = EarlyStopping(scripted([1.0, 2.0]), 2, trainable_only=True)
    stop.after_epoch(model, 1, {})
    assert set(stop.best_state) == {"1.weight", "1.bias"}
    kept = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.mul_(-3.0)  # in place: a kept reference instead of a copy would follow
    stop.after_epoch(model, 2, {})
    stop.restore(model)
    assert torch.equal(model[1].weight, kept)


def test_fixed_epochs_train_exactly_that_many_and_restore_nothing():
    model = nn.Linear(1, 1)
    stop = Epochs(3, schedule_epochs=10)
    assert stop.schedule_epochs == 10 and Epochs(3).schedule_epochs == 3
    assert drive(stop, model, 10)[0] == 3
    stop.restore(model)
    assert model.weight.item() == 3.0


# --- the epoch loop and threads ------------------------------------------------------


def test_run_epochs_binds_the_generator_to_dropout_for_the_fit_only():
    model = nn.Sequential(nn.Linear(2, 2), GeneratorDropout(0.5))
    generator = torch.Generator().manual_seed(0)
    seen: list[torch.Generator | None] = []

    def one_epoch(epoch: int) -> float:
        assert model.training
        seen.append(model[1].generator)
        return 1.0 / epoch

    history = run_epochs(model, one_epoch, Epochs(2), generator, "hint")
    assert seen == [generator, generator] and model[1].generator is None
    assert history == {"train_loss": [1.0, 0.5]} and not model.training


def test_a_non_finite_training_loss_ends_the_fit_with_the_hint_and_unbinds_dropout():
    model = nn.Sequential(GeneratorDropout(0.5))
    with pytest.raises(FloatingPointError, match="training loss is nan at epoch 2: lower lr"):
        run_epochs(
            model, lambda e: 1.0 if e == 1 else math.nan, Epochs(3), torch.Generator(), "lower lr"
        )
    assert model[0].generator is None


def test_use_threads_sets_torchs_threads_and_ignores_zero():
    before = torch.get_num_threads()
    try:
        use_threads(1)
        assert torch.get_num_threads() == 1
        use_threads(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
