"""The MLP module: normalization layers, initialization, and scores in the shape metrics expect."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from objectives.mlp.knobs import MLPKnobs
from objectives.mlp.network import build_network
from objectives.mlp.objective import MLPObjective
from tests.objectives.helpers import MLP_FAST as FAST
from tests.objectives.helpers import fold


def mlp(task: str = "classification", **settings) -> MLPObjective:
    return MLPObjective(task=task, **settings)


@pytest.mark.parametrize(
    ("norm", "layer"), [("none", None), ("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)]
)
def test_each_normalization(norm, layer):
    knobs = MLPKnobs(norm=norm, n_layers=2, width=8)
    net = build_network(knobs, 4, 1, torch.Generator().manual_seed(0))
    found = [type(m) for m in net if isinstance(m, nn.BatchNorm1d | nn.LayerNorm)]
    assert found == ([layer, layer] if layer else [])
    data, _ = fold(n=201)  # 151 training rows: a last batch of one row would break batch norm
    out = mlp(**FAST).fit_predict({"norm": norm, "batch_size": 30}, data)
    assert np.isfinite(out.scores).all()


def _first_weights(init: str, activation: str) -> torch.Tensor:
    knobs = MLPKnobs(init=init, activation=activation, n_layers=1, width=200)
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
