"""What a model costs, measured: the adapter's size on disk, the served model's latency and
size, the memory a fit took."""

from __future__ import annotations

import mmap
import time
from pathlib import Path

import torch
from torch import nn

from objectives.compression.measure import model_kb
from objectives.lora.measure import PeakMemory, adapter_kb, serving_facts


class _Saved:
    """Stands in for a PeftModel: save_pretrained writes 3 KiB in two files."""

    def save_pretrained(self, folder: str) -> None:
        Path(folder, "adapter_model.safetensors").write_bytes(b"x" * 2048)
        Path(folder, "adapter_config.json").write_bytes(b"y" * 1024)


def test_adapter_kb_is_what_save_pretrained_writes():
    assert adapter_kb(_Saved()) == 3.0  # type: ignore[arg-type]


def test_peak_memory_sees_what_the_block_allocated():
    size = 64 * 2**20
    with PeakMemory() as memory:
        block = mmap.mmap(-1, size)  # fresh pages: no allocator can hand back resident memory
        for page in range(0, size, mmap.PAGESIZE):
            block[page] = 1  # touched, so resident, and alive until the block ends
        time.sleep(0.05)
    block.close()
    assert memory.growth_mb > 48 and memory.peak_mb >= memory.growth_mb


class _Classifier(nn.Module):
    """Stands in for the served model: token ids in, one call recorded per batch."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.calls: list[tuple[int, int]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(input_ids.shape))  # type: ignore[arg-type]
        time.sleep(0.001)
        return self.embed(input_ids * attention_mask)


def test_serving_facts_time_batches_of_1_32_and_64_texts_on_one_thread():
    model = _Classifier()
    ids = [[1, 2, 3], [4, 5], [6]]  # cycled: the first 1, 32 or 64 of 1, 2, 3, 1, 2, ...
    facts = serving_facts(model, ids, examples=5, repeats=2)

    assert set(facts) == {
        "latency_ms_b1", "latency_ms_b32", "latency_ms_b64", "model_kb", "inference_peak_kb",
    }  # fmt: skip
    assert facts["latency_ms_b1"] >= 1 and facts["latency_ms_b64"] >= 1  # ms per call
    assert facts["latency_ms_b32"] < facts["latency_ms_b1"]  # per text: a call over 32
    assert facts["model_kb"] == model_kb(model) > 0
    # 3 warm-up and 5 timed calls of one text, 1 + 2 of 32 and of 64, one more of 64 (memory),
    # each batch padded to its longest text
    assert model.calls == [(1, 3)] * 8 + [(32, 3)] * 3 + [(64, 3)] * 4
