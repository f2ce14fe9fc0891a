"""LoRA's knobs: every setting a study tunes or fixes, its default, and the peft config they make.

The adapter has rank ``r`` and scale ``lora_alpha / r`` (``lora_alpha`` 0:
``alpha_ratio * r``) on the linear layers ``target_modules`` names, by role
(a TARGETS key) or as a comma-separated list of module names.

How the trained model is served (objectives/lora/compress.py): ``merge``
folds the adapter into the base's weights (peft's ``merge_and_unload``), and
``quantize=int8`` then swaps the merged model's linear layers for torch's
dynamic int8 ones, which only a merged model can have (unmerged, the adapter's
low-rank branch would stay float beside int8 base weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from peft import LoraConfig

from objectives.compression.quantize import engine

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
QUANTIZE = ("none", "int8")  # int8: torch's dynamic quantization of the merged model


class KnobError(ValueError):
    """A knob's value LoRA cannot train or serve with: its ``key`` and ``value``, and the
    ``fix`` (which names other knobs, if it is their combination that is refused)."""

    def __init__(self, key: str, value: object, fix: str) -> None:
        super().__init__(f"LoRA {key}={value!r}: {fix}")
        self.key, self.value, self.fix = key, value, fix


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
    # Serving (compress.py): the fold is scored and measured, and the refit model logged,
    # as served; the scores of the unmerged float model are the reference (metric_drop).
    merge: bool = False  # serve the adapter merged into the base (peft's merge_and_unload)
    quantize: str = "none"  # none | int8 (dynamic int8 of the merged model's nn.Linear; merge)

    def serving(self) -> str:
        """The form served: ``adapter`` (unmerged), ``merged`` or ``int8`` (merged, quantized)."""
        return "int8" if self.quantize == "int8" else "merged" if self.merge else "adapter"

    def modules(self) -> list[str]:
        return TARGETS.get(self.target_modules) or [
            m.strip() for m in self.target_modules.split(",") if m.strip()
        ]

    def alpha(self) -> int:
        return int(self.lora_alpha) or max(1, round(self.alpha_ratio * self.r))

    def check(self) -> LoRAKnobs:
        """Refuse a setting peft or torch would reject later, naming the fix."""
        if self.bias not in BIASES:
            raise KnobError("bias", self.bias, f"use one of {BIASES}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise KnobError("lora_dropout", self.lora_dropout, "use a value in [0, 1)")
        for name in ("r", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise KnobError(name, getattr(self, name), "use a whole number >= 1")
        if not self.modules():
            roles = ", ".join(TARGETS)
            raise KnobError(
                "target_modules", self.target_modules, f"use {roles} or names separated by commas"
            )
        self.check_serving()
        return self

    def check_serving(self) -> None:
        """Refuse a serving form that is not one, or int8 where it cannot run (KnobError)."""
        if not isinstance(self.merge, bool):
            raise KnobError("merge", self.merge, "use true or false")
        if self.quantize not in QUANTIZE:
            raise KnobError("quantize", self.quantize, "use none or int8 (dynamic int8, merged)")
        if self.quantize == "int8" and not self.merge:
            raise KnobError(
                "quantize",
                self.quantize,
                "int8 quantizes the merged model, so it needs merge=true: set merge to true, "
                "or quantize to none",
            )
        if self.quantize == "int8" and engine() is None:
            raise KnobError(
                "quantize", self.quantize, "this torch build has no quantized CPU engine: use none"
            )

    def lora_config(self) -> LoraConfig:
        return LoraConfig(
            task_type="SEQ_CLS",  # the classification head is trained and saved with the adapter
            r=int(self.r),
            lora_alpha=self.alpha(),
            lora_dropout=float(self.lora_dropout),
            target_modules=self.modules(),
            bias=cast(Literal["none", "all", "lora_only"], self.bias),
        )
