"""Int8 quantization with torch.ao: dynamic int8 layers, quantization-aware training, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.quantized import dynamic as nnqd

from objectives.compression import quantize
from objectives.compression.measure import model_kb
from objectives.mlp.knobs import MLPKnobs
from objectives.mlp.network import build_network

pytestmark = pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated")


def network(width: int = 128, **knobs) -> nn.Sequential:
    """An MLP of 8 inputs and 3 outputs, as the MLP objective builds it."""
    return build_network(MLPKnobs(width=width, **knobs), 8, 3, torch.Generator().manual_seed(0))


def test_int8_swaps_every_linear_layer_for_a_dynamic_int8_one_and_ships_smaller():
    net = network().eval()
    int8 = quantize.dynamic_int8(net)
    layers = [m for m in int8.modules() if isinstance(m, nnqd.Linear)]
    assert len(layers) == 3
    assert not any(type(m) is nn.Linear for m in int8.modules())
    assert all(type(m) is nn.Linear for m in net if not isinstance(m, nn.ReLU)), "a copy"
    assert model_kb(int8) < model_kb(net) / 2  # int8 weights: a quarter of float32, plus scales
    x = torch.randn(16, 8)
    torch.testing.assert_close(int8(x), net(x), atol=0.1, rtol=0.1)  # rounded, not changed


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_qat_trains_with_fake_quantization_and_converts_to_int8(norm):
    net = quantize.prepare_qat(network(width=16, norm=norm, dropout=0.1))
    assert net.training
    fake = [m for m in net.modules() if isinstance(m, torch.ao.quantization.FakeQuantizeBase)]
    assert fake, "prepare_qat inserted fake quantization"
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(3):
        optimizer.zero_grad()
        net(torch.randn(32, 8)).pow(2).mean().backward()
        optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True))

    int8 = quantize.convert_qat(net)
    assert sum(isinstance(m, nnq.Linear) for m in int8.modules()) == 3
    assert not any(isinstance(m, nn.BatchNorm1d) for m in int8.modules()), "fused into Linear"
    assert torch.isfinite(int8(torch.randn(4, 8))).all()


def test_qat_is_refused_up_front_for_an_activation_it_cannot_quantize():
    wanted, fix = quantize.refusal("qat", "silu")
    assert "silu" in wanted
    assert "activation relu, gelu, tanh" in fix
    for activation in quantize.QAT_ACTIVATIONS:
        assert quantize.refusal("qat", activation) is None
    assert quantize.refusal("int8", "silu") is None
    assert quantize.refusal("none", "silu") is None


def test_without_a_quantized_engine_int8_and_qat_are_refused(monkeypatch):
    monkeypatch.setattr(quantize, "engine", lambda: None)
    for kind in ("int8", "qat"):
        wanted, fix = quantize.refusal(kind, "relu")
        assert "no quantized CPU engine" in wanted
        assert fix == "set quantize to none"
    assert quantize.refusal("none", "relu") is None


def test_this_build_has_a_quantized_engine():
    assert quantize.engine() in torch.backends.quantized.supported_engines
