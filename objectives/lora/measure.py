"""What a fold's adapter costs: its size on disk, its latency, the memory its training took.

These are fit facts (``FoldOutput.fit_facts``), logged per trial and usable as
further study objectives (e.g. F1 against adapter size).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from peft import PeftModel
from torch import nn


def adapter_kb(model: PeftModel) -> float:
    """The adapter's size on disk as save_pretrained writes it (safetensors, head included)."""
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1024


def latency(
    model: nn.Module, tokenizer: Any, max_length: int, texts: np.ndarray, n: int
) -> dict[str, float]:
    """Milliseconds per example to tokenize and classify, one at a time and 32 at a time."""
    sample = [str(texts[i % len(texts)]) for i in range(n)]

    def classify(chunk: list[str]) -> None:
        encoded = tokenizer(
            chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        model(**encoded)

    model.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        for size in (1, 32):
            chunks = [sample[i : i + size] for i in range(0, n, size)]
            classify(chunks[0])  # warm-up
            started = time.perf_counter()
            for chunk in chunks:
                classify(chunk)
            out[f"latency_ms_b{size}"] = 1000 * (time.perf_counter() - started) / n
    return out


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
