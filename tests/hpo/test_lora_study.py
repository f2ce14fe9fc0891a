"""LoRA studies end to end on a tiny slice: real MiniLM, peft, Optuna journal, MLflow SQLite."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.runner import make_plan, run
from tests.hpo.helpers import ALWAYS_PRUNE, hpo
from tests.hpo.runner.helpers import load, runs

# 8 intents x 12 utterances, group holdout (24 validation rows), one or two short epochs.
TINY = [
    "study.data={name:intents,per_intent:12}",
    "study.objective.max_length=24",
    "study.objective.latency_examples=4",
    "study.space.epochs.low=1",
    "study.space.epochs.high=2",
    "study.n_trials=2",
]
LORA_PARAMS = {"r", "alpha_ratio", "lora_dropout", "target_modules", "lr", "epochs"}
LORA_PARAMS |= {"batch_size", "warmup_ratio", "weight_decay"}
FACTS = {"trainable_params", "trainable_pct", "adapter_kb", "train_seconds", "latency_ms_b1"}
FACTS |= {"latency_ms_b32", "peak_rss_mb", "train_mem_mb", "epochs_run", "best_epoch"}
PARETO_PARAMS = {"r", "alpha_ratio", "lora_dropout", "target_modules", "lr", "bias"}
CURVES = ("train_loss", "inner_valid_loss", "inner_valid_accuracy", "inner_valid_f1")
# What save_pretrained writes for the adapter and the tokenizer, and the loading notes.
ADAPTER_FILES = {"adapter_model.safetensors", "adapter_config.json", "hpo_lora.json"}
ADAPTER_FILES |= {"tokenizer.json", "tokenizer_config.json", "README.md"}


@pytest.mark.slow
def test_lora_intents_logs_lora_params_metrics_and_a_loadable_adapter(
    make_cfg, tmp_path: Path
) -> None:
    # median never prunes before its 5th trial, and with a pruner every epoch is reported
    cfg = make_cfg("study=lora_intents", "sampler=tpe", "pruner=median", *TINY)
    run(cfg)

    study = load(cfg)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    parent, children = runs(cfg)
    client = MlflowClient(cfg.tracking.uri)
    for trial, child in zip(study.trials, children, strict=True):
        assert set(child.data.params) == LORA_PARAMS
        metrics = child.data.metrics
        assert FACTS | {"f1", "oof_accuracy", "oof_f1"} <= set(metrics)
        assert "f1_std" not in metrics, "one validation split (group holdout): no spread"
        assert metrics["f1"] == pytest.approx(trial.value)
        epochs = trial.params["epochs"]
        for curve in CURVES:  # one point per epoch (one fold)
            history = client.get_metric_history(child.info.run_id, f"{curve}/fold_0")
            assert len(history) == epochs
        assert sorted(trial.intermediate_values) == list(range(epochs))

    uri = parent.data.tags["hpo.model_uri"]
    assert "python_function" in mlflow.models.get_model_info(uri).flavors
    logged = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(tmp_path / "logged"), tracking_uri=cfg.tracking.uri
    )
    adapter = Path(logged, "artifacts", "adapter")
    assert {f.name for f in adapter.iterdir()} >= ADAPTER_FILES
    assert "PeftModel.from_pretrained" in (adapter / "README.md").read_text()
    pyfunc = mlflow.pyfunc.load_model(uri)
    plan = make_plan(cfg)
    best = study.best_trial
    valid = plan.folds[0][1]
    model = plan.objective.refit(
        best.params, plan.data.X, plan.data.y, plan.data.n_classes, best.user_attrs["cv"]["info"], 0
    )
    texts = list(plan.data.X[valid])
    expected = plan.objective.predict(model, plan.data.X[valid])
    import pandas as pd

    got = pyfunc.predict(pd.DataFrame({"text": texts}))  # the signature's one string column
    np.testing.assert_allclose(got, expected, atol=1e-6)
    page = Path(client.download_artifacts(parent.info.run_id, "report.html")).read_text()
    assert "Optimization History Plot" in page


@pytest.mark.slow
def test_a_pruner_that_always_prunes_stops_a_lora_trial_after_its_first_epoch(make_cfg) -> None:
    # ThresholdPruner(lower=2.0): macro-F1 never reaches 2, so the first report prunes
    one_trial = [o for o in TINY if "n_trials" not in o] + ["study.n_trials=1"]
    cfg = make_cfg("study=lora_intents", "sampler=random", *ALWAYS_PRUNE, *one_trial)
    run(cfg)

    (trial,) = load(cfg).trials
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]
    _, (child,) = runs(cfg)
    assert child.data.tags["hpo.state"] == "PRUNED"
    assert child.data.tags["hpo.prune_reason"] == "pruned at epoch 1 of fold 0"
    assert child.data.metrics["pruned_epoch"] == 1 and child.data.metrics["epochs_run"] == 1
    client = MlflowClient(cfg.tracking.uri)
    assert len(client.get_metric_history(child.info.run_id, "train_loss/fold_0")) == 1


@pytest.mark.slow
def test_a_missing_model_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    model = f"study.objective.model_path={tmp_path}/x"
    done = hpo("study=lora_intents", *TINY, model, "progress=false", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("error: model folder"), lines[0]  # the objective's own words
    assert "study.objective.model_path" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_data_file_without_the_named_columns_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("sentence,label\nhello,a\n")
    data = f"study.data={{path:{tmp_path}/d.csv,text:text,target:label}}"
    done = hpo("study=lora_intents", data, "progress=false", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (
        f"error: data file '{tmp_path}/d.csv' has no column 'text': set study.data.text "
        "to one of sentence, label"
    )


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_lora_intents_pareto_trades_f1_against_trainable_parameters(make_cfg, sampler) -> None:
    cfg = make_cfg(
        "study=lora_intents_pareto",
        f"sampler={sampler}",
        *[o for o in TINY if "epochs" not in o],
        "study.objective.epochs=1",
    )
    summary = run(cfg)

    study = load(cfg)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    parent, children = runs(cfg)
    for trial, child in zip(study.trials, children, strict=True):
        assert trial.values[0] == pytest.approx(child.data.metrics["f1"])
        assert trial.values[1] == child.data.metrics["trainable_params"]
        assert set(child.data.params) == PARETO_PARAMS
        assert set(child.data.metrics) >= FACTS
        assert not trial.intermediate_values, "multi-objective trials are not pruned"
    front = {t.number for t in study.best_trials}
    assert {row["trial"] for row in summary.front} == front
    assert set(parent.data.tags["hpo.pareto_front"].split(",")) == {str(n) for n in front}
    best_f1 = max(study.best_trials, key=lambda t: t.values[0]).number
    assert parent.data.tags["hpo.model_trial"] == str(best_f1)
    client = MlflowClient(cfg.tracking.uri)
    page = Path(client.download_artifacts(parent.info.run_id, "report.html")).read_text()
    assert "Pareto-front Plot" in page and "trainable_params" in page
