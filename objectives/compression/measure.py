"""What a model costs to serve, measured on the model as it would ship (compressed or not).

Fit facts (``FoldOutput.fit_facts``), measured in every fold of every trial,
so each costs a few milliseconds:

- ``latency_ms_b1``, ``latency_ms_b64``: median milliseconds per call of the
  model on a batch of 1 and of 64 rows (the fold's validation rows, cycled),
  over repeated timed calls after warm-up calls. The model call only: the rows
  are tensors already. torch runs on ONE thread while timing (restored after),
  so numbers compare across trials and machines whatever the fit's thread
  share; one measurement runs at a time in the process (a lock), but folds
  training beside it still share the cores, so read them as a ranking with
  noise, not a benchmark.
- ``model_kb``: the size of what would ship, ``torch.save`` of the model's
  state_dict into memory (kB = 1024 bytes). Int8 layers store their packed
  int8 weights; pruned weights are still stored densely, zeros included.
- ``inference_peak_kb``: how far the process's peak resident memory rises
  while the model runs on the batch of 64. On Linux the peak (VmHWM) is reset
  first by writing "5" to /proc/self/clear_refs (process-wide: anything else
  reading this process's VmHWM or ru_maxrss sees the reset); elsewhere the
  resident size before and after (psutil), a floor of the true peak. Memory is
  counted in pages, so a small model often reads 0: it fits in memory the
  process holds already.
- ``zero_weight_fraction``: the share of the linear layers' weights (hidden
  and output) that are exactly zero, int8 weights included.

``measure`` times a model that takes one tensor of rows (the MLP);
``measure_calls`` times any prepared calls in the same way (the LoRA
objective's, whose model takes token ids: objectives/lora/measure.py).
"""

from __future__ import annotations

import io
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.ao.nn import quantized as nnq

FACTS = (
    "latency_ms_b1",
    "latency_ms_b64",
    "model_kb",
    "inference_peak_kb",
    "zero_weight_fraction",
)
WARMUP = 3  # untimed calls first: lazy allocations, caches
REPEATS = {1: 25, 64: 10}  # timed calls per batch size: a few ms in all for a small MLP
PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
_ONE_AT_A_TIME = threading.Lock()


def measure(model: nn.Module, X: np.ndarray) -> dict[str, float]:
    """Every serving fact of ``model`` (module docs), timed on rows of ``X``."""
    model.eval()
    facts = {"model_kb": model_kb(model), "zero_weight_fraction": zero_weight_fraction(model)}
    batches = {size: rows(X, size) for size in REPEATS}
    with _ONE_AT_A_TIME, one_thread(), torch.no_grad():
        for size, batch in batches.items():
            facts[f"latency_ms_b{size}"] = median_ms(partial(model, batch), REPEATS[size])
        facts["inference_peak_kb"] = peak_growth_kb(partial(model, batches[64]))
    return facts


def rows(X: np.ndarray, n: int) -> torch.Tensor:
    """``n`` rows of ``X`` as a float tensor, cycling through them if there are fewer."""
    return torch.as_tensor(np.asarray(X)[np.arange(n) % len(X)], dtype=torch.float32)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block, its thread count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def measure_calls(
    calls: Mapping[int, Callable[[], object]],
    repeats: Mapping[int, int],
    warmup: Mapping[int, int] | None = None,
) -> dict[str, float]:
    """``latency_ms_b{size}`` of each prepared call (``calls[size]`` runs the model on a batch
    of ``size`` rows), as ``measure`` times them, and ``inference_peak_kb`` of the largest.

    ``repeats[size]`` timed calls after ``warmup[size]`` untimed ones (default WARMUP): a
    model that takes a second a batch needs fewer than a small MLP.
    """
    facts: dict[str, float] = {}
    with _ONE_AT_A_TIME, one_thread(), torch.no_grad():
        for size, call in calls.items():
            first = WARMUP if warmup is None else warmup.get(size, WARMUP)
            facts[f"latency_ms_b{size}"] = median_ms(call, repeats[size], first)
        facts["inference_peak_kb"] = peak_growth_kb(calls[max(calls)])
    return facts


def median_ms(call: Callable[[], object], repeats: int, warmup: int = WARMUP) -> float:
    """The median of ``repeats`` timed calls, in milliseconds, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def model_kb(model: nn.Module) -> float:
    """kB of ``torch.save(model.state_dict())``: what would ship."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1024


def linear_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrix of every linear layer, float or int8 (dequantized), in order."""
    weights = []
    for module in model.modules():
        if isinstance(module, nnq.Linear):  # int8, dynamic or static: weight() unpacks it
            weights.append(module.weight().dequantize())
        elif isinstance(module, nn.Linear):
            weights.append(module.weight.detach())
    return weights


def zero_weight_fraction(model: nn.Module) -> float:
    """The share of all linear weights that are exactly zero (0 for a model with none)."""
    weights = linear_weights(model)
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights)) / total if total else 0.0


def peak_growth_kb(call: Callable[[], object]) -> float:
    """How many kB the process's peak resident memory rises during ``call()`` (module docs)."""
    if _reset_peak():
        start = _status_kb("VmRSS")
        call()
        return max(0.0, _status_kb("VmHWM") - start)
    start = _resident_kb()  # not Linux, or /proc is read-only: before and after
    call()
    return max(0.0, _resident_kb() - start)


def _resident_kb() -> float:
    """The resident size (psutil); without psutil, the all-time peak (``ru_maxrss``)."""
    try:
        import psutil
    except ImportError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform == "darwin" else float(peak)  # bytes on macOS
    return float(psutil.Process().memory_info().rss) / 1024


def _reset_peak() -> bool:
    """Reset the process's VmHWM to its current resident size; False where that is impossible."""
    try:
        PROC_CLEAR_REFS.write_text("5")
        return PROC_STATUS.is_file()
    except OSError:
        return False


def _status_kb(field: str) -> float:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])  # "VmHWM:   123456 kB"
    raise OSError(f"{field} is not in {PROC_STATUS}")
