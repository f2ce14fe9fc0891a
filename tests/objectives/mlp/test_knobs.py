"""The MLP knobs: defaults overridden by params, per-layer widths, refused settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from objectives.mlp.network import build_network
from objectives.mlp.objective import MLPObjective


def mlp(task: str = "classification", **settings) -> MLPObjective:
    return MLPObjective(task=task, **settings)


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
