"""L1 pruning of the hidden layers: the stated share of zeros, whole neurons, made permanent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from objectives.compression import prune, quantize
from objectives.compression.measure import zero_weight_fraction
from objectives.mlp.knobs import MLPKnobs
from objectives.mlp.network import build_network

pytestmark = pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated")


def network(**knobs) -> nn.Sequential:
    knobs = {"width": 20, "n_layers": 2, **knobs}
    return build_network(MLPKnobs(**knobs), 6, 3, torch.Generator().manual_seed(0))


def test_hidden_layers_are_every_linear_but_the_output():
    net = network()
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert prune.hidden_linears(net) == linears[:-1]


@pytest.mark.parametrize("amount", [0.3, 0.75])
def test_unstructured_pruning_zeroes_the_stated_share_of_each_hidden_layer(amount):
    net = network()
    layers = prune.hidden_linears(net)
    output = [m for m in net if isinstance(m, nn.Linear)][-1]
    output_before = output.weight.detach().clone()
    prune.apply(layers, amount, "l1_unstructured")
    prune.make_permanent(layers)
    for layer in layers:
        assert isinstance(layer.weight, nn.Parameter), "permanent: a plain weight again"
        assert not hasattr(layer, "weight_mask")
        assert int((layer.weight == 0).sum()) == round(amount * layer.weight.numel())
    assert torch.equal(output.weight, output_before), "the output layer is not pruned"


def test_structured_pruning_removes_whole_neurons_with_their_bias():
    net = network()
    layers = prune.hidden_linears(net)
    prune.apply(layers, 0.25, "l1_structured")
    prune.make_permanent(layers)
    for layer in layers:
        dead = (layer.weight == 0).all(dim=1)
        assert int(dead.sum()) == round(0.25 * layer.out_features)  # 5 of 20 rows
        assert (layer.bias[dead] == 0).all()
        assert (layer.weight[~dead] != 0).any(dim=1).all(), "the other neurons are kept"
        assert not hasattr(layer, "bias_mask")


def test_the_smallest_weights_are_the_ones_pruned():
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -5.0, 0.2, 3.0], [-0.3, 4.0, 0.05, -2.0]]))
    prune.apply([layer], 0.5, "l1_unstructured")
    prune.make_permanent([layer])
    assert torch.equal(layer.weight != 0, torch.tensor([[0, 1, 0, 1], [0, 1, 0, 1]]).bool())


def test_fine_tuning_keeps_pruned_weights_at_zero_while_the_mask_is_on():
    net = network()
    layers = prune.hidden_linears(net)
    prune.apply(layers, 0.5, "l1_unstructured")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        net(torch.randn(16, 6)).pow(2).mean().backward()
        optimizer.step()
    prune.make_permanent(layers)
    hidden = sum(layer.weight.numel() for layer in layers)
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers)
    assert zeros == hidden // 2


def test_a_network_prepared_for_qat_prunes_the_same_and_keeps_the_zeros_in_int8():
    net = quantize.prepare_qat(network(norm="batch"))
    layers = prune.hidden_linears(net)
    assert len(layers) == 2
    prune.apply(layers, 0.5, "l1_unstructured")
    net(torch.randn(16, 6))  # observers see data before converting
    prune.make_permanent(layers)
    int8 = quantize.convert_qat(net)
    hidden, output = 6 * 20 + 20 * 20, 20 * 3
    assert zero_weight_fraction(int8) >= 0.5 * hidden / (hidden + output)  # int8 rounds more to 0
