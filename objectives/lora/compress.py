"""The trained LoRA model as it is served: unmerged, merged into its base, or merged and int8.

- ``adapter`` (``merge: false``): the PeftModel itself; every adapted layer
  runs the base's matmul plus the adapter's low-rank branch.
- ``merged``: peft's ``merge_and_unload`` adds ``B @ A * alpha / r`` into
  each adapted base weight and drops the peft wrappers: the plain
  transformers model, with the trained head, that scores (to float rounding)
  as the adapter did, at the base model's cost.
- ``int8``: the merged model with every nn.Linear (attention, feed-forward,
  pooler and head) swapped for torch's dynamic int8 Linear
  (objectives/compression/quantize.py). The embeddings stay float.

Serving changes the model in place: compute whatever needs the adapter
(its size, the reference scores) before.
"""

from __future__ import annotations

from peft import PeftModel
from torch import nn

from objectives.compression import quantize
from objectives.lora.knobs import LoRAKnobs


def serve(model: PeftModel, knobs: LoRAKnobs) -> nn.Module:
    """``model`` in the form ``knobs.serving()`` names, in eval mode."""
    if not knobs.merge:
        return model.eval()
    merged: nn.Module = model.merge_and_unload()
    if knobs.quantize == "int8":
        return quantize.dynamic_int8(merged.eval()).eval()
    return merged.eval()
