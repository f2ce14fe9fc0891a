"""What a fold's model costs: the served model's latency, size and memory, the adapter's size,
and the memory training took.

These are fit facts (``FoldOutput.fit_facts``), logged per trial and usable as
further study objectives or constraints (e.g. F1 against latency_ms_b1). The
serving facts are the MLP's (objectives/compression/measure.py: the same names
mean the same things), measured on the model as it is served (compress.py:
unmerged, merged or int8). They time the model call on the fold's validation
texts tokenized already (token ids, each batch padded to its longest text),
not the tokenizer, with torch on one thread:

- ``latency_ms_b1``, ``latency_ms_b64``: the median milliseconds per call on a
  batch of 1 and of 64 texts, after warm-up calls (3 at batch 1, 1 at 64):
  ``latency_examples`` timed calls at batch 1, ``latency_batch_repeats`` at 64.
- ``latency_ms_b32``: milliseconds per text at batch 32 (the median call over
  32), ``latency_batch_repeats`` timed calls after one warm-up; per text, as it
  always was for this objective (benchmarks/lora_ranks.py reads it so).
- ``model_kb``: kB of ``torch.save`` of the served model's state_dict: every
  weight the served module holds, the frozen base included. Merged, the float
  model; int8, the int8 linear weights (packed) with the float embeddings;
  unmerged, base plus adapter plus head. That is the model as one
  self-contained file would ship it, and about what serving holds in memory.
  What the logged model ships differs for the unmerged form only: the adapter
  (``adapter_kb``), the base being named, not copied.
- ``adapter_kb``: the adapter and head alone as ``save_pretrained`` writes them
  (safetensors), whatever is served: what the adapter adds to a base.
- ``inference_peak_kb``: how far the process's peak resident memory rises
  during the batch-64 call (objectives/compression/measure.py).
- ``peak_rss_mb``, ``train_mem_mb``: the process's resident memory during the
  fit (its peak, and its growth), sampled (``PeakMemory``).
"""

from __future__ import annotations

import tempfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import psutil
from peft import PeftModel
from torch import nn

from objectives.compression.measure import measure_calls, model_kb
from objectives.lora.model import batch

BATCHES = (1, 32, 64)  # texts per timed call
WARMUP = {1: 3, 32: 1, 64: 1}  # untimed calls first; a batch of 64 takes up to a second


def adapter_kb(model: PeftModel) -> float:
    """The adapter's size on disk as save_pretrained writes it (safetensors, head included)."""
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1024


def serving_facts(
    model: nn.Module, ids: list[list[int]], examples: int, repeats: int
) -> dict[str, float]:
    """latency_ms_b1/_b32/_b64, model_kb and inference_peak_kb of the served ``model`` (module
    docs), timed on the token ids ``ids`` (cycled): ``examples`` timed calls at batch 1,
    ``repeats`` at 32 and at 64."""
    model.eval()
    calls = {size: partial(model, **batch(ids, np.arange(size) % len(ids))) for size in BATCHES}
    facts = {"model_kb": model_kb(model)}
    facts |= measure_calls(calls, {1: examples, 32: repeats, 64: repeats}, WARMUP)
    facts["latency_ms_b32"] /= 32  # per text
    return facts


class PeakMemory:
    """The process's peak resident memory while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakMemory:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20
