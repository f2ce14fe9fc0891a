"""The LoRA tests' settings: the shared fast ones, timing one call per batch of 32 and 64."""

from __future__ import annotations

from typing import Any

from tests.objectives.helpers import LORA_FAST

# A batch of 64 texts takes a few hundred ms on one thread: one timed call, not three.
FAST: dict[str, Any] = {**LORA_FAST, "latency_batch_repeats": 1}
