"""The shipped compression studies end to end (studies/mlp_digits_compress.yaml,
studies/mlp_digits_distill.yaml): real torch, an Optuna journal and the MLflow SQLite store,
read back, with tiny budgets.

Latencies vary from run to run, so no test depends on where one falls against a bound: the
compress study's latency bound is swapped for one every trial meets, and the infeasible
trials come from bounds on facts that depend on the network's shape only (``model_kb``, the
bytes of ``torch.save``; ``n_params``). The trials are enqueued, so which are feasible does
not depend on what a sampler draws.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial
from torch import nn
from torch.ao.nn import quantized as nnq

from hpo.config import Config
from hpo.data import load_data
from hpo.runner import make_plan, run
from hpo.storages import open_storage
from objectives.mlp import objective as mlp_objective
from objectives.mlp.objective import MLPObjective
from tests.hpo.runner.helpers import load, runs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # torch.ao's observers, mlflow's pickle
]
# Two folds of three epochs, and none of the end-of-study extras (the winner's curves,
# BBC-CV): what is tested is the study, its constraints and its model.
FAST = [
    "study.objective.max_epochs=3",
    "study.objective.patience=2",
    "study.cv.n_splits=2",
    "pruner=none",
    "evaluation.curves=false",
    "evaluation.bbc_boot=0",
]


def compress(n_layers: int, width: int, **compression: Any) -> dict[str, Any]:
    """Every parameter of mlp_digits_compress's space: uncompressed unless said otherwise."""
    return {
        "n_layers": n_layers,
        "width": width,
        "lr": 1.0e-2,
        "quantize": "none",
        "prune_amount": 0.0,
        "prune_kind": "l1_unstructured",
        "prune_finetune_epochs": 0,
        **compression,
    }


# model_kb 105.6, 12.5, 9.3 and 9.1: under 10 kB only the two int8 models are feasible, and
# the widest float model (trial 0) has the best macro-F1.
COMPRESS_TRIALS = [
    compress(2, 128),
    compress(1, 32, prune_amount=0.5, prune_finetune_epochs=1),
    compress(1, 64, quantize="int8"),
    compress(1, 32, quantize="qat"),
]
# The study's latency bound, loosened so that every trial meets it, and a size bound.
SIZE_BOUND = "study.constraints=[{name:latency_ms_b1,max:1000.0},{name:model_kb,max:10.0}]"
COST_FACTS = ["latency_ms_b1", "latency_ms_b64", "inference_peak_kb", "metric_drop"]


def enqueued(cfg: Config, trials: list[dict[str, Any]], directions: list[str]) -> None:
    """The study created with ``trials`` waiting, as a warm start leaves it."""
    study = optuna.create_study(
        study_name=cfg.study.name, storage=open_storage(cfg.storage), directions=directions
    )
    for params in trials:
        study.enqueue_trial(params)


def artifact(cfg: Config, run_id: str, path: str) -> str:
    return Path(MlflowClient(cfg.tracking.uri).download_artifacts(run_id, path)).read_text()


def logged_model(cfg: Config, best: FrozenTrial, uri: str) -> nn.Module:
    """The parent run's model: mlflow.pyfunc loads it and it predicts what a refit of the
    best trial predicts. Returned as mlflow.pytorch loads it, to look inside."""
    mlflow.set_tracking_uri(cfg.tracking.uri)  # as a user does: models:/ URIs resolve there
    plan = make_plan(cfg)
    data = load_data(cfg.study.data, plan.objective.task, 0)  # type: ignore[arg-type]
    info = best.user_attrs["cv"]["info"]
    model = plan.objective.refit(best.params, data.X, data.y, data.n_classes, info, 0)
    expected = plan.objective.predict(model, data.X)
    frame = pd.DataFrame(data.X, columns=data.feature_names)  # the signature's columns
    got = np.asarray(mlflow.pyfunc.load_model(uri).predict(frame)).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    return mlflow.pytorch.load_model(uri)


def test_the_compress_study_chooses_the_best_feasible_trial_and_logs_it_quantized(
    make_cfg,
) -> None:
    cfg = make_cfg(
        "study=mlp_digits_compress",
        f"study.n_trials={len(COMPRESS_TRIALS)}",
        SIZE_BOUND,
        "study.objective.qat_epochs=1",
        *FAST,
    )
    enqueued(cfg, COMPRESS_TRIALS, ["maximize", "minimize"])
    summary = run(cfg)

    study = load(cfg)
    assert [t.params for t in study.trials] == COMPRESS_TRIALS
    sizes = [t.user_attrs["cv"]["info"]["model_kb"] for t in study.trials]
    assert sizes[0] > sizes[1] > 10.0 > max(sizes[2:]), sizes
    assert [t.user_attrs["feasible"] for t in study.trials] == [False, False, True, True]
    by_f1 = max(study.trials, key=lambda t: t.values[0])
    assert by_f1.number == 0, "the best macro-F1 is the biggest model, which is infeasible"
    best = max(study.trials[2:], key=lambda t: t.values[0])
    assert summary is not None and summary.best_number == best.number
    text = summary.text()
    assert "constraints latency_ms_b1 <= 1000, model_kb <= 10: 2 of 4 complete trials" in text
    assert f"best feasible f1 (maximize): {best.values[0]:.4f}" in text
    assert f"(trial {best.number}, std over folds)" in text

    parent, children = runs(cfg)
    assert [c.data.tags["hpo.feasible"] for c in children] == ["false", "false", "true", "true"]
    for child in children:
        facts = child.data.metrics
        assert {"model_kb", "zero_weight_fraction", "metric_uncompressed", *COST_FACTS} <= set(
            facts
        )
    assert children[1].data.metrics["zero_weight_fraction"] > 0.4  # half of the hidden layer
    tags = parent.data.tags
    assert tags["hpo.best_trial"] == tags["hpo.model_trial"] == str(best.number)
    assert parent.data.metrics["n_infeasible"] == 2
    table = list(csv.DictReader(io.StringIO(artifact(cfg, parent.info.run_id, "candidates.csv"))))
    assert table and table[0]["trial"] == str(best.number)  # best macro-F1 first
    assert {row["trial"] for row in table} <= {"2", "3"}, "only feasible trials are candidates"
    assert {"f1", "model_kb", *COST_FACTS} <= set(table[0])
    assert "Infeasible Trial" in artifact(cfg, parent.info.run_id, "report.html")

    model = logged_model(cfg, best, tags["hpo.model_uri"])
    quantized = [m for m in model.modules() if isinstance(m, nnq.Linear)]  # int8 or QAT's
    assert len(quantized) == 2, "both layers of the best (int8) model are int8"


def distill(width: int, alpha: float) -> dict[str, Any]:
    """Every parameter of mlp_digits_distill's space."""
    return {"width": width, "lr": 1.0e-2, "distill_temperature": 2.0, "distill_alpha": alpha}


# n_params of one hidden layer of w units on digits (64 features, 10 classes): 75 w + 10, so
# 2410, 610 and 1210. A student of at most 1,500 parameters: trial 0 is infeasible.
DISTILL_TRIALS = [distill(32, 0.5), distill(8, 0.5), distill(16, 0.0)]
TEACHER_WIDTH = 48  # the fold teacher: one hidden layer of 48, told apart from the students


def test_the_distill_study_trains_one_teacher_per_fold_and_logs_a_small_student(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    widths: list[int] = []  # every network trained with early stopping: students and teachers
    train = MLPObjective._train

    def counted(self: MLPObjective, knobs: Any, *args: Any, **kwargs: Any) -> Any:
        widths.append(knobs.width)
        return train(self, knobs, *args, **kwargs)

    monkeypatch.setattr(MLPObjective, "_train", counted)
    monkeypatch.setattr(mlp_objective, "FOLD_TEACHERS", type(mlp_objective.FOLD_TEACHERS)())
    cfg = make_cfg(
        "study=mlp_digits_distill",
        f"study.n_trials={len(DISTILL_TRIALS)}",
        f"study.objective.distill_teacher_width={TEACHER_WIDTH}",
        "study.objective.distill_teacher_layers=1",
        "study.constraints=[{name:n_params,max:1500}]",
        *FAST,
    )
    enqueued(cfg, DISTILL_TRIALS, ["maximize"])
    summary = run(cfg)

    # a teacher per fold (2), shared by every trial, and one on all rows for the refit
    assert widths.count(TEACHER_WIDTH) == 3
    assert sorted(w for w in widths if w != TEACHER_WIDTH) == [8, 8, 16, 16, 32, 32]
    study = load(cfg)
    assert [t.params for t in study.trials] == DISTILL_TRIALS
    assert [t.user_attrs["cv"]["info"]["n_params"] for t in study.trials] == [2410, 610, 1210]
    assert max(study.trials, key=lambda t: t.values[0]).number == 0, "the widest is best"
    best = max(study.trials[1:], key=lambda t: t.values[0])
    assert summary is not None and summary.best_number == best.number
    text = summary.text()
    assert "constraints n_params <= 1500: 1 of 3 complete trials infeasible" in text
    assert f"best feasible f1 (maximize): {best.values[0]:.4f}" in text
    assert f"(trial {best.number}, std over folds)" in text

    parent, children = runs(cfg)
    for child, params in zip(children, DISTILL_TRIALS, strict=True):
        assert float(child.data.params["distill_alpha"]) == params["distill_alpha"]
        assert float(child.data.params["distill_temperature"]) == 2.0
    assert parent.data.tags["hpo.model_trial"] == str(best.number)
    assert parent.data.metrics["n_infeasible"] == 1
    table = list(csv.DictReader(io.StringIO(artifact(cfg, parent.info.run_id, "candidates.csv"))))
    assert table[0]["trial"] == str(best.number)
    assert {row["trial"] for row in table} <= {"1", "2"}

    model = logged_model(cfg, best, parent.data.tags["hpo.model_uri"])
    shapes = [tuple(w.shape) for w in model.parameters() if w.ndim == 2]  # weight matrices
    width = best.params["width"]
    assert shapes == [(width, 64), (10, width)], "the student alone: one small hidden layer"
