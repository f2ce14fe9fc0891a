"""The MLP's compression steps, in the one order in which none undoes another.

After training (the model the fold's reference scores come from):

1. ``quantize=qat``: the network is prepared for quantization-aware training
   (quant stubs, Linear+BatchNorm1d fused, fake quantization);
2. ``prune_amount > 0``: L1 masks on the hidden layers;
3. fine-tuning, ``prune_finetune_epochs`` (when pruned) plus ``qat_epochs``
   (qat), on the rows the model trained on, in the same way (a teacher's soft
   targets included), masks and fake quantization on;
4. the masks made permanent;
5. ``qat``: converted to int8; ``int8``: dynamic int8 quantization.

QAT is prepared before pruning so that one fine-tuning both keeps pruned
weights at zero and learns int8 rounding; pruning is baked in before int8 so
the int8 weights keep the zeros (symmetric int8 maps 0 to 0). The steps
themselves are torch's (objectives/compression/).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from objectives.compression import prune, quantize
from objectives.mlp.knobs import MLPKnobs
from objectives.mlp.network import Pipeline

# finetune(model, epochs): train ``model`` that many more epochs, as it was trained.
Finetune = Callable[[Pipeline, int], object]


def compress(model: Pipeline, knobs: MLPKnobs, finetune: Finetune) -> Pipeline:
    """``model`` compressed as ``knobs`` say, in place (the trained model is not kept)."""
    if not knobs.compressed():
        return model
    qat = knobs.quantize == "qat"
    if qat:
        assert isinstance(model.net, nn.Sequential)
        model.net = quantize.prepare_qat(model.net)
    layers = prune.hidden_linears(model.net) if knobs.prune_amount > 0 else []
    prune.apply(layers, knobs.prune_amount, knobs.prune_kind)
    epochs = (knobs.prune_finetune_epochs if layers else 0) + (knobs.qat_epochs if qat else 0)
    if epochs:
        finetune(model, epochs)
    prune.make_permanent(layers)
    if qat:
        model.net = quantize.convert_qat(model.net)
    elif knobs.quantize == "int8":
        model.net = quantize.dynamic_int8(model.net)
    return model.eval()
