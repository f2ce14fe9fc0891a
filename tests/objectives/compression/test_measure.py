"""Serving facts: size as saved, zero weights, single-threaded timing, inference memory.

No test compares latencies (timing margins are not a test's to rely on).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from objectives.compression import measure, quantize

pytestmark = pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated")

FACTS = {"latency_ms_b1", "latency_ms_b64", "model_kb", "inference_peak_kb", "zero_weight_fraction"}


def network() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 2)).eval()


def test_measure_gives_every_fact_finite_on_float_and_int8_models():
    X = np.random.default_rng(0).normal(size=(7, 5))  # fewer rows than a batch: cycled
    for model in (network(), quantize.dynamic_int8(network())):
        facts = measure.measure(model, X)
        assert set(facts) == FACTS
        assert all(math.isfinite(v) and v >= 0 for v in facts.values())
        assert facts["latency_ms_b1"] > 0 and facts["latency_ms_b64"] > 0


def test_model_kb_is_the_saved_state_dict():
    model = network()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert measure.model_kb(model) == len(buffer.getvalue()) / 1024


def test_zero_weight_fraction_counts_float_and_int8_zeros():
    model = network()
    with torch.no_grad():
        model[0].weight[:16] = 0.0  # 16 of 32 rows of 5: 80 zeros
    total = 5 * 32 + 32 * 2
    assert measure.zero_weight_fraction(model) == pytest.approx(80 / total)
    assert measure.zero_weight_fraction(quantize.dynamic_int8(model)) >= 80 / total
    assert measure.zero_weight_fraction(nn.ReLU()) == 0.0


def test_timing_runs_on_one_thread_and_restores_the_count():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    try:
        with measure.one_thread():
            seen.append(torch.get_num_threads())
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_median_ms_times_each_call_after_warm_up():
    calls: list[int] = []
    value = measure.median_ms(lambda: calls.append(1), 5)
    assert len(calls) == measure.WARMUP + 5
    assert value >= 0


def test_the_batches_cycle_through_fewer_rows():
    X = np.arange(6.0).reshape(3, 2)
    batch = measure.rows(X, 5)
    assert batch.dtype == torch.float32
    np.testing.assert_array_equal(batch.numpy()[:, 0], [0, 2, 4, 0, 2])


@pytest.mark.skipif(not measure._reset_peak(), reason="no resettable peak memory (not Linux)")
def _touch_fresh_pages(size: int) -> None:
    """``size`` bytes of new resident memory, then freed: an anonymous map written to page
    by page (an allocator may instead reuse memory an earlier test left resident)."""
    import mmap

    with mmap.mmap(-1, size) as pages:
        for offset in range(0, size, mmap.PAGESIZE):
            pages[offset] = 1


def test_the_peak_memory_of_a_call_is_seen_after_the_peak_is_reset():
    grown = measure.peak_growth_kb(lambda: _touch_fresh_pages(64 * 2**20))  # 64 MB, then freed
    assert grown > 60_000
    assert measure.peak_growth_kb(lambda: None) < 60_000, "the earlier peak was reset"


def test_without_a_resettable_peak_the_resident_growth_is_read(monkeypatch):
    monkeypatch.setattr(measure, "_reset_peak", lambda: False)
    kept: list[torch.Tensor] = []
    grown = measure.peak_growth_kb(lambda: kept.append(torch.ones(8 * 2**20)))
    assert grown >= 0
