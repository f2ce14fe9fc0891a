"""How the adapter trains: the inner split, AdamW with warmup, and the inner split's score.

The epoch loop, the best epoch's weights and the reports to the pruner are
objectives/torch_fit.py's; only the trainable parameters (adapter, head, and
biases with ``bias``) are kept for the best epoch, the frozen base is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import transformers
from peft import PeftModel
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from torch import nn

from objectives.lora.knobs import LoRAKnobs
from objectives.lora.model import batch, logits, to_scores
from objectives.torch_fit import Epochs, Evaluation, History, run_epochs


def inner_split(
    X: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified when every class has two rows or more, with at least one row per class."""
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    least = int(np.count_nonzero(counts)) if stratify is not None else 1
    size = max(round(fraction * len(y)), least)
    parts: list[np.ndarray] = train_test_split(
        X, y, test_size=size, random_state=seed, stratify=stratify
    )
    return parts[0], parts[1], parts[2], parts[3]


class InnerValidation:
    """The inner split's loss, accuracy and macro F1, and the study metric (EarlyStopping's)."""

    def __init__(self, ids: list[list[int]], y: np.ndarray, metric: Any) -> None:
        self.ids = ids
        self.y = y
        self.metric = metric

    def __call__(self, model: nn.Module, epoch: int) -> Evaluation:
        out = logits(model, self.ids)
        loss = float(nn.functional.cross_entropy(out, torch.as_tensor(self.y)))
        labels = out.argmax(-1).numpy()
        curves = {
            "inner_valid_accuracy": float(accuracy_score(self.y, labels)),
            "inner_valid_f1": float(f1_score(self.y, labels, average="macro", zero_division=0)),
        }
        value = None
        if self.metric is not None:
            value = self.metric(self.y, to_scores(out, int(out.shape[1])))
        return Evaluation(loss, value, curves)


def train(
    model: PeftModel,
    knobs: LoRAKnobs,
    ids: list[list[int]],
    y: np.ndarray,
    seed: int,
    stop: Epochs,
) -> History:
    """AdamW with linear warmup and decay over the trainable (LoRA, head) parameters."""
    generator = torch.Generator().manual_seed(seed)
    batches = math.ceil(len(ids) / knobs.batch_size)
    total = batches * stop.schedule_epochs
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=knobs.lr,
        weight_decay=knobs.weight_decay,
    )
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, round(knobs.warmup_ratio * total), total
    )
    target = torch.as_tensor(y, dtype=torch.long)

    def one_epoch(epoch: int) -> float:
        order = torch.randperm(len(ids), generator=generator)
        running = 0.0
        for rows in _chunks(order, knobs.batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(**batch(ids, rows)).logits, target[rows])
            loss.backward()
            optimizer.step()
            schedule.step()
            running += float(loss.detach()) * len(rows)
        return running / len(ids)

    return run_epochs(model, one_epoch, stop, generator, "lower lr")


def _chunks(order: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for i in range(0, len(order), size):
        yield order[i : i + size]
