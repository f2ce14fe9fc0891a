"""LoRA's knobs: every setting a study tunes or fixes, its default, and the peft config they make.

The adapter has rank ``r`` and scale ``lora_alpha / r`` (``lora_alpha`` 0:
``alpha_ratio * r``) on the linear layers ``target_modules`` names, by role
(a TARGETS key) or as a comma-separated list of module names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from peft import LoraConfig

# Linear layers by role in BERT-style encoders (MiniLM, BERT, RoBERTa); any other
# value of target_modules is read as a comma-separated list of module names.
TARGETS: dict[str, list[str]] = {
    "query_value": ["query", "value"],
    "query_key_value": ["query", "key", "value"],
    "attention": ["query", "key", "value", "attention.output.dense"],
    "all_linear": [
        *("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
    ],
}
BIASES = ("none", "lora_only", "all")


@dataclass
class LoRAKnobs:
    """Every tunable setting, with the default used when the study neither fixes nor tunes it."""

    r: int = 8
    lora_alpha: int = 0  # 0: alpha_ratio * r
    alpha_ratio: float = 2.0
    lora_dropout: float = 0.1
    target_modules: str = "query_value"  # a TARGETS name or "name,name,..."
    bias: str = "none"  # none | lora_only | all (all trains every bias of the base too)
    lr: float = 1.0e-3
    batch_size: int = 32
    epochs: int = 3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0

    def modules(self) -> list[str]:
        return TARGETS.get(self.target_modules) or [
            m.strip() for m in self.target_modules.split(",") if m.strip()
        ]

    def alpha(self) -> int:
        return int(self.lora_alpha) or max(1, round(self.alpha_ratio * self.r))

    def check(self) -> LoRAKnobs:
        """Refuse a setting peft or torch would reject later, naming the fix."""
        if self.bias not in BIASES:
            raise ValueError(f"LoRA bias={self.bias!r}: use one of {BIASES}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"LoRA lora_dropout={self.lora_dropout}: use a value in [0, 1)")
        if min(self.r, self.batch_size, self.epochs) < 1 or not self.modules():
            raise ValueError("LoRA r, batch_size and epochs must be >= 1, target_modules not empty")
        return self

    def lora_config(self) -> LoraConfig:
        return LoraConfig(
            task_type="SEQ_CLS",  # the classification head is trained and saved with the adapter
            r=int(self.r),
            lora_alpha=self.alpha(),
            lora_dropout=float(self.lora_dropout),
            target_modules=self.modules(),
            bias=cast(Literal["none", "all", "lora_only"], self.bias),
        )
