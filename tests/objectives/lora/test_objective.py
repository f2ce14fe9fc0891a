"""The LoRA objective through the harness: reports, fit facts, reproducibility, the base folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from hpo.config import CVConfig
from hpo.folds import make_folds
from hpo.metrics import get_metric
from objectives.base import BadSetting
from objectives.lora import LoRAObjective
from tests.objectives.helpers import holdout_fold, run_cv, trial_check
from tests.objectives.lora.helpers import FAST

FACTS = {
    "trainable_params", "trainable_pct", "adapter_kb", "train_seconds", "latency_ms_b1",
    "latency_ms_b32", "peak_rss_mb", "train_mem_mb", "epochs_run", "best_epoch",
    "latency_ms_b64", "model_kb", "inference_peak_kb", "metric_uncompressed", "metric_drop",
}  # fmt: skip


@pytest.mark.slow
def test_one_trial_through_the_harness_reports_each_epoch_and_measures_the_adapter(tiny) -> None:
    objective = LoRAObjective(**{**FAST, "epochs": 2})
    folds = make_folds(CVConfig(scheme="group_kfold", n_splits=2, seed=0), tiny)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    params = {"r": 4, "target_modules": "query_value"}

    result = run_cv(
        objective, params, tiny, folds, get_metric("f1"), 0, trial_check(trial), n_jobs=2
    )

    assert np.isfinite(result.value) and len(result.fold_values) == 2
    assert result.oof_scores is not None and result.oof_scores.shape == (len(tiny.y), 8)
    np.testing.assert_allclose(result.oof_scores.sum(axis=1), 1.0)
    assert set(result.fit_facts) == FACTS == set(objective.fit_fact_names)
    assert result.fit_facts["metric_drop"] == 0.0, "served unmerged: the reference itself"
    # r=4 on query and value of 6 layers: 2 * 6 * 4 * (384 + 384); the head: 384 * 8 + 8
    assert result.fit_facts["trainable_params"] == 2 * 6 * 4 * 768 + 384 * 8 + 8
    assert 0 < result.fit_facts["trainable_pct"] < 1
    assert (
        result.fit_facts["adapter_kb"] > 4 * result.fit_facts["trainable_params"] / 1024
    )  # float32
    assert all(result.fit_facts[f"latency_ms_b{n}"] > 0 for n in (1, 32, 64))
    # the served (unmerged) model holds the whole base: far more than the adapter
    assert result.fit_facts["model_kb"] > 100 * result.fit_facts["adapter_kb"]
    # fold i's epoch e is step i * 2 + e; every fold ends at its last step
    assert sorted(trial.storage.get_trial(trial._trial_id).intermediate_values) == [0, 1, 2, 3]
    for curve in ("train_loss", "inner_valid_loss", "inner_valid_accuracy", "inner_valid_f1"):
        assert [len(result.curves[f"{curve}/fold_{k}"]) for k in range(2)] == [2, 2]


@pytest.mark.slow
def test_more_rank_and_more_modules_mean_more_trainable_parameters(tiny) -> None:
    objective = LoRAObjective(**FAST)
    fold = holdout_fold(tiny)
    counts = {
        (r, t): objective.fit_predict({"r": r, "target_modules": t}, fold).fit_facts[
            "trainable_params"
        ]
        for r, t in [(1, "query_value"), (8, "query_value"), (8, "all_linear")]
    }
    assert counts[(1, "query_value")] < counts[(8, "query_value")] < counts[(8, "all_linear")]


@pytest.mark.slow
def test_a_trial_is_reproducible_with_folds_side_by_side(tiny) -> None:
    objective = LoRAObjective(**FAST)
    folds = make_folds(CVConfig(scheme="group_kfold", n_splits=2, seed=0), tiny)
    params = {"r": 2, "lora_dropout": 0.2}
    run = [run_cv(objective, params, tiny, folds, get_metric("f1"), 0, n_jobs=n) for n in (1, 2)]
    np.testing.assert_array_equal(run[0].oof_scores, run[1].oof_scores)


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


def test_a_missing_model_folder_is_a_user_error(tmp_path: Path, tiny) -> None:
    with pytest.raises(BadSetting, match=r"model folder .* not found.*objective\.model_path"):
        LoRAObjective(**FAST, model_path=str(tmp_path / "nope"))
