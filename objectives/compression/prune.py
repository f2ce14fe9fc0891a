"""L1 magnitude pruning of a network's hidden linear layers, with torch.nn.utils.prune.

- ``l1_unstructured``: the smallest ``amount`` of each hidden layer's weights
  (by absolute value) become zero. Sparse, but the same shape: dense storage
  and dense matrix products do not shrink.
- ``l1_structured``: whole neurons, the hidden units whose incoming weight
  rows have the smallest L1 norm (``ln_structured(n=1, dim=0)``); their biases
  are masked too, so a pruned unit's pre-activation is exactly zero.

Only hidden layers are pruned: pruning the output layer by rows would remove
classes. ``apply`` puts masks on (fine-tuning then keeps pruned weights at
zero), ``make_permanent`` bakes the zeros into plain weights (``prune.remove``)
before the model is measured, quantized or saved.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn.utils import prune

PRUNE_KINDS = ("l1_unstructured", "l1_structured")


def hidden_linears(net: nn.Module) -> list[nn.Linear]:
    """Every linear layer of ``net`` but the last (the output), in order.

    Quantization-aware layers (torch.ao's QAT Linear, fused LinearBn1d)
    are nn.Linear subclasses, so a network prepared for QAT prunes the same.
    """
    return [m for m in net.modules() if isinstance(m, nn.Linear)][:-1]


def apply(layers: list[nn.Linear], amount: float, kind: str) -> None:
    """Mask ``amount`` of each layer's weights (``kind``: unstructured, or whole neurons)."""
    for layer in layers:
        if kind == "l1_structured":
            prune.ln_structured(layer, "weight", amount, n=1, dim=0)
            if layer.bias is not None:
                mask = cast(torch.Tensor, layer.weight_mask)
                rows = mask.amax(dim=1)  # 1 for a unit kept, 0 for a pruned one
                prune.custom_from_mask(layer, "bias", rows)
        else:
            prune.l1_unstructured(layer, "weight", amount)


def make_permanent(layers: list[nn.Linear]) -> None:
    """Bake the masks into the weights: plain parameters again, the zeros kept."""
    for layer in layers:
        for name in ("weight", "bias"):
            if hasattr(layer, f"{name}_mask"):
                prune.remove(layer, name)
