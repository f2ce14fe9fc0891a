"""Cross-validated scoring: a trial on every fold, the per-fold metric, fold-level pruning.

The folds (hpo/folds.py) are drawn once per study and reused by every trial, so
trials are compared on the same data. After each fold the running mean is
reported to the pruner; a hopeless trial stops after one or two folds.

An objective that reports epochs (``Objective.max_steps`` is not None) is
pruned on those reports instead: fold i's epoch e is step ``i * max_steps + e``,
so a step means the same fold and epoch in every trial, each fold ends at its
last step, and a pruner's resource (Hyperband's ``max_resource: auto``) is
n_folds * max_epochs (max_epochs in holdout mode). Folds side by side are
judged in step order, as if they ran one after another (both kinds of pruning
are in hpo/pruning.py: ``fold_should_prune``, ``EpochsInStepOrder``).
Under ``pruner=wilcoxon`` (``CVSetup.fold_scores``) every objective reports each
fold's own score at step = fold, for the pruner's paired test across trials.

An objective that compresses its model (quantized, pruned) may hand back the
scores of the model before compression too (``FoldOutput.reference_scores``):
the fit facts then hold the metric uncompressed and its drop (``metric_drop``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from hpo.data import Dataset
from hpo.folds import Folds
from hpo.metrics import Metric
from hpo.pruning import EpochsInStepOrder, PruneCheck, fold_should_prune
from objectives.base import FoldData, FoldOutput, Objective


def folds_side_by_side(n_folds: int, cores: int) -> int:
    """How many folds run at once by default: the fewest waves that leave no core idle.

    One fold per core leaves a lone last wave when the folds do not divide by
    the cores (5 folds on 2 cores: 2 + 2 + 1, the last fold on its own, and a
    fit's second thread gains little). Instead the folds go in
    ``n_folds // cores`` waves, a core running more than one fold where
    needed (3 + 2), which is faster than 2 + 2 + 1 (``benchmarks/xgb_cost.py
    --set n_jobs=3``; figures in docs/benchmarks.md).
    """
    if n_folds <= cores:
        return n_folds
    waves = n_folds // cores
    return -(-n_folds // waves)


class FoldsPruned(optuna.TrialPruned):
    """Pruned after some folds; carries what was measured so it can still be logged."""

    def __init__(self, result: CVResult, reason: str | None = None) -> None:
        super().__init__(reason or f"pruned after fold {len(result.fold_values)}")
        self.result = result


@dataclass(frozen=True)
class CVSetup:
    """What every trial of a study is scored on, and how (``Plan.cv_setup`` gives it).

    ``leave_one_out``: the metric is computed once on all out-of-fold
    predictions (one row per fold), and nothing is pruned.
    """

    data: Dataset
    folds: Folds
    metric: Metric
    seed: int
    leave_one_out: bool = False
    n_jobs: int = 1
    # Report each fold's own score at step = fold, never epochs (hpo.pruning.fold_scores):
    # WilcoxonPruner pairs a trial's fold scores with the best trial's on the same folds.
    fold_scores: bool = False
    # The study's direction, which a positive ``metric_drop`` means worse by (a study may
    # state one against its metric's); None: the metric's own.
    direction: str | None = None


@dataclass
class CVResult:
    """The trial's value (mean over folds), its spread, and everything else measured."""

    value: float
    std: float
    fold_values: list[float]
    oof_index: np.ndarray | None = None  # rows that were scored, and their out-of-fold scores
    oof_scores: np.ndarray | None = None
    fit_facts: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)  # fold_curve(name, k): values
    fit_seconds: float = 0.0


def fold_curve(name: str, fold: int) -> str:
    """The key of fold ``fold``'s curve ``name`` (``inner_valid_loss/fold_2``): in MLflow's UI
    each fold is its own line, and the folds of one curve share a section of charts."""
    return f"{name}/fold_{fold}"


def cross_validate(
    objective: Objective,
    params: dict[str, Any],
    setup: CVSetup,
    should_prune: PruneCheck | None = None,
) -> CVResult:
    """Score ``params`` on every fold, and keep the out-of-fold predictions.

    Folds run ``setup.n_jobs`` at a time in threads, each fit with cores // folds in
    its wave threads (XGBoost and torch release the GIL, and one thread per fold
    beats one fold on two threads). When a fold ends the
    trial (pruned, or an error), the folds still running are told to stop
    (``FoldData.stopped``) rather than run to the end for nothing. After each fold, in fold order,
    ``should_prune(step, running_mean)`` is asked (step = fold index) unless
    ``setup.leave_one_out``, where the metric is computed once on all out-of-fold
    predictions (leave-one-out: one row per fold) and nothing is pruned. An
    objective that reports epochs is asked per epoch instead (module docstring).
    """
    data, folds, metric, pooled = setup.data, setup.folds, setup.metric, setup.leave_one_out
    n_jobs = max(1, min(setup.n_jobs, len(folds)))
    stride = objective.max_steps(params)
    epochs = None
    if should_prune and stride and not pooled and not setup.fold_scores:
        epochs = EpochsInStepOrder(should_prune, stride)
    cores = os.cpu_count() or 1
    stop = threading.Event()  # the trial is over: folds still running stop early
    oof: np.ndarray | None = None
    seen = np.zeros(len(data.y), dtype=bool)
    fold_values: list[float] = []
    infos: list[dict[str, float]] = []
    curves: dict[str, list[float]] = {}
    references: list[tuple[np.ndarray, np.ndarray | None]] = []  # (rows, scores uncompressed)
    started = time.perf_counter()

    def result() -> CVResult:
        out = _result(fold_values, infos, curves, started)
        drop = metric_drop(metric, data.y, fold_values, references, pooled, setup.direction)
        out.fit_facts |= drop
        return out

    def fit(index: int, threads: int) -> FoldOutput:
        train, valid = folds[index]
        fold = FoldData(
            data.X[train],
            data.y[train],
            data.X[valid],
            data.n_classes,
            setup.seed + index,
            threads,
            metric,
            stop.is_set,
        )
        if epochs is None:
            return objective.fit_predict(params, fold)
        try:
            return objective.fit_predict(params, fold, epochs.for_fold(index))
        finally:
            epochs.fold_ended(index)

    with ThreadPoolExecutor(n_jobs) if n_jobs > 1 else _Inline() as pool:
        try:
            for wave in range(0, len(folds), n_jobs):
                indices = range(wave, min(wave + n_jobs, len(folds)))
                threads = max(1, cores // len(indices))  # a short last wave gets every core
                outputs = pool.map(fit, indices, [threads] * len(indices))
                for index, out in zip(indices, outputs, strict=True):
                    valid = folds[index][1]
                    if oof is None:
                        oof = np.zeros((len(data.y), *out.scores.shape[1:]), dtype=float)
                    oof[valid], seen[valid] = out.scores, True
                    infos.append(out.fit_facts)
                    references.append((valid, out.reference_scores))
                    for key, values in out.curves.items():  # each fold's curve its own line
                        curves[fold_curve(key, index)] = list(values)
                    if pooled:
                        continue
                    fold_values.append(metric(data.y[valid], out.scores))
                    if epochs is not None and epochs.pruned is not None:
                        pruned = result()
                        pruned.fit_facts |= epochs.pruned_facts()
                        raise FoldsPruned(pruned, epochs.pruned_reason())
                    if (
                        epochs is None
                        and should_prune
                        and fold_should_prune(should_prune, index, fold_values, setup.fold_scores)
                    ):
                        raise FoldsPruned(result())
        except BaseException:
            stop.set()  # before the pool waits for the folds still running
            raise
    assert oof is not None, "no folds"
    if pooled:
        fold_values = [metric(data.y[seen], oof[seen])]
    scored = result()
    scored.oof_index, scored.oof_scores = np.flatnonzero(seen), oof[seen]
    return scored


def metric_drop(
    metric: Metric,
    y: np.ndarray,
    values: list[float],
    references: list[tuple[np.ndarray, np.ndarray | None]],
    pooled: bool,
    direction: str | None = None,
) -> dict[str, float]:
    """``metric_uncompressed`` and ``metric_drop``, when every fold scored has reference scores.

    ``references`` holds each fold's validation rows and the scores of its model
    before compression (``FoldOutput.reference_scores``). The uncompressed metric
    is their mean over folds (pooled like ``values`` under leave-one-out); the drop
    is uncompressed minus compressed, signed by ``direction`` (the study's; None: the
    metric's own) so that a positive drop always means the compressed model is worse
    for the study.
    """
    if not references or any(scores is None for _, scores in references):
        return {}
    if pooled:
        rows = np.concatenate([valid for valid, _ in references])
        uncompressed = metric(y[rows], np.concatenate([s for _, s in references if s is not None]))
    else:
        uncompressed = float(np.mean([metric(y[v], s) for v, s in references if s is not None]))
    drop = uncompressed - float(np.mean(values))
    return {
        "metric_uncompressed": uncompressed,
        "metric_drop": drop if (direction or metric.direction) == "maximize" else -drop,
    }


class _Inline:
    """A stand-in for a thread pool that runs in the caller's thread (n_jobs=1)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable[..., FoldOutput], *items: Any) -> Iterator[FoldOutput]:
        return map(fn, *items)


def _result(
    fold_values: list[float],
    infos: list[dict[str, float]],
    curves: dict[str, list[float]],
    started: float,
) -> CVResult:
    info = {k: float(np.mean([i[k] for i in infos if k in i])) for k in _keys(infos)}
    return CVResult(
        float(np.mean(fold_values)),
        float(np.std(fold_values)),
        fold_values,
        fit_facts=info,
        curves=curves,
        fit_seconds=time.perf_counter() - started,
    )


def _keys(infos: list[dict[str, float]]) -> Iterator[str]:
    return iter(dict.fromkeys(k for i in infos for k in i))
