"""What LoRA training changes: the adapter, the head and the chosen biases, never the base."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from objectives.lora import LoRAObjective, default_model_path
from tests.objectives.helpers import LORA_FAST as FAST


@pytest.mark.slow
def test_only_lora_weights_and_the_head_change(tiny) -> None:
    objective = LoRAObjective(**{**FAST, "epochs": 2})
    trained = objective.refit({"r": 4}, tiny.X, tiny.y, tiny.n_classes, {}, 0).model
    untrained, _ = objective._build(objective.knobs({"r": 4}), tiny.n_classes, 0)
    pristine = AutoModelForSequenceClassification.from_pretrained(
        default_model_path(), num_labels=tiny.n_classes
    ).state_dict()
    after = {_base_name(n): p for n, p in trained.named_parameters()}
    before = dict(untrained.named_parameters())
    changed = {n for n, p in trained.named_parameters() if not torch.equal(p, before[n])}

    assert changed, "training changed something"
    assert all("lora_" in n or "classifier" in n for n in changed), sorted(changed)[:5]
    assert any("lora_B" in n for n in changed) and any("classifier" in n for n in changed)
    frozen = [n for n in after if "lora_" not in n and "classifier" not in n]
    assert len(frozen) > 90  # every encoder weight: the same as in the model folder
    assert all(torch.equal(after[n], pristine[n]) for n in frozen)


@pytest.mark.slow
def test_bias_lora_only_trains_the_biases_of_the_adapted_layers_only(tiny) -> None:
    objective = LoRAObjective(**FAST)
    params = {"r": 2, "bias": "lora_only"}  # adapters on query and value (query_value)
    trained = objective.refit(params, tiny.X, tiny.y, tiny.n_classes, {}, 0).model
    untrained, _ = objective._build(objective.knobs(params), tiny.n_classes, 0)
    before = dict(untrained.named_parameters())
    changed = {n for n, p in trained.named_parameters() if not torch.equal(p, before[n])}

    biases = {n for n in changed if "lora_" not in n and "classifier" not in n}
    adapted = {
        f"base_model.model.bert.encoder.layer.{i}.attention.self.{m}.base_layer.bias"
        for i in range(6)
        for m in ("query", "value")
    }
    assert biases == adapted, sorted(biases ^ adapted)[:5]
    assert any("lora_B" in n for n in changed) and any("classifier" in n for n in changed)
    untouched = [n for n, p in trained.named_parameters() if "key" in n and n.endswith("bias")]
    assert untouched and all(not trained.get_parameter(n).requires_grad for n in untouched)


def _base_name(name: str) -> str:
    """A peft parameter name as the plain model names it (no wrapper, no base_layer)."""
    return name.removeprefix("base_model.model.").replace(".base_layer", "")
