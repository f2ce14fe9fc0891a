"""What an adapter costs, measured: its size on disk, its latency, the memory a fit took."""

from __future__ import annotations

import mmap
import time
from pathlib import Path

import numpy as np

from objectives.lora.measure import PeakMemory, adapter_kb, latency


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


def test_latency_times_one_and_thirty_two_texts_at_a_time():
    calls: list[int] = []

    class Model:
        def eval(self) -> None: ...

        def __call__(self, **batch: list[str]) -> None:
            calls.append(len(batch["texts"]))

    def tokenizer(chunk: list[str], **_: object) -> dict[str, list[str]]:
        return {"texts": chunk}

    out = latency(Model(), tokenizer, 8, np.array(["a", "b", "c"]), 32)  # type: ignore[arg-type]
    assert set(out) == {"latency_ms_b1", "latency_ms_b32"} and all(v > 0 for v in out.values())
    assert calls == [1] * 33 + [32, 32]  # a warm-up call, then every chunk
