"""MLP study cost: what epoch-level Hyperband saves, and what the platform adds to a torch loop.

    python -m benchmarks.mlp_pruning                        # mlp_digits, 20 trials, seed 0
    python -m benchmarks.mlp_pruning --study mlp_f1 --trials 30 --pruners none hyperband sha

Part 1, pruning: the same study (same seed, sampler, n_trials, folds) with each
pruner; total epochs trained (sum over trials and folds, pruned trials
included), wall time of hpo.study.run end to end, and the best value. Target:
Hyperband trains <= 50% of the epochs of pruner=none, best value within 1%.

Part 2, throughput: training samples per second of one trial (one holdout
fold through hpo.cv.cross_validate, a real Optuna trial receiving the
per-epoch reports; early stopping off so both sides run every epoch) against
a plain hand-written torch loop on the same standardized in-memory tensors:
the same network, Adam, batch size and epochs, with a validation loss per
epoch. Best of --repeats, interleaved. Target: >= 0.9x.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import compose, load, placed, quiet, revision, scratch, table


def run_study(study: str, pruner: str, trials: int, seed: int, n_jobs: int) -> dict[str, Any]:
    """One study run with ``pruner``: epochs, wall seconds, best value, states."""
    import optuna

    from hpo.storage import open_storage
    from hpo.study import run

    overrides = [f"study={study}", f"pruner={pruner}", f"seed={seed}", f"n_jobs={n_jobs}"]
    cfg = compose([*overrides, "progress=false", "tracking.enabled=false"])
    with scratch("mlp-pruning-") as tmp:
        cfg = placed(cfg, tmp, trials)
        started = time.perf_counter()
        summary = run(cfg)
        wall = time.perf_counter() - started
        loaded = optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))
        epochs = 0.0
        for trial in loaded.trials:
            cv = trial.user_attrs.get("cv", {})
            epochs += cv.get("info", {}).get("epochs_run", 0.0) * len(cv.get("fold_values", []))
    return {"epochs": epochs, "wall": wall, "best": summary.best_value, "counts": summary.counts}


def throughput(study: str, epochs: int, repeats: int) -> tuple[float, float]:
    """Best samples/s of (one hpo trial, a plain torch loop) on the same holdout fold."""
    import optuna
    import torch

    from hpo.cv import cross_validate, make_folds
    from hpo.data import load_data
    from hpo.metrics import get_metric
    from hpo.study import make_plan

    cfg = compose([f"study={study}", "cv=holdout", "n_jobs=1"])
    cfg.study.objective.max_epochs = epochs
    cfg.study.objective.patience = epochs  # no early stopping: both sides run every epoch
    plan = make_plan(cfg)
    data = load_data(cfg.study.data, plan.objective.task, 0)  # type: ignore[arg-type]
    folds = make_folds(plan.spec.cv, data)
    metric = get_metric(plan.spec.metric, plan.objective.task)  # type: ignore[arg-type]
    params = {"n_layers": 2, "width": 128, "optimizer": "adam", "lr": 1e-3, "batch_size": 64}
    n_fit = round(len(folds[0][0]) * (1 - plan.objective.inner_valid_fraction))  # type: ignore[attr-defined]
    ours, plain = [], []
    for _ in range(repeats):
        trial = optuna.create_study(direction=plan.direction).ask()

        def check(step: int, value: float, trial: Any = trial) -> bool:
            trial.report(value, step)
            return bool(trial.should_prune())

        started = time.perf_counter()
        cross_validate(plan.objective, params, data, folds, metric, 0, check, n_jobs=1)
        ours.append(n_fit * epochs / (time.perf_counter() - started))
        torch.set_num_threads(1)  # as the harness gives a fold on its own
        plain.append(_plain_loop(data.X[folds[0][0]], data.y[folds[0][0]], epochs, n_fit))
    return max(ours), max(plain)


def _plain_loop(X: np.ndarray, y: np.ndarray, epochs: int, n_fit: int) -> float:
    """A hand-written torch loop: 2x128 ReLU MLP, Adam 1e-3, batch 64, validation loss per epoch."""
    import torch
    from torch import nn

    started = time.perf_counter()
    Xt = torch.as_tensor(X, dtype=torch.float32)
    Xt = (Xt - Xt.mean(0)) / Xt.std(0).clamp_min(1e-6)
    yt = torch.as_tensor(y, dtype=torch.long)
    X_fit, y_fit, X_val, y_val = Xt[:n_fit], yt[:n_fit], Xt[n_fit:], yt[n_fit:]
    n_classes = int(yt.max()) + 1
    net = nn.Sequential(
        nn.Linear(X.shape[1], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, n_classes),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(n_fit)
        for i in range(0, n_fit - 63, 64):
            rows = order[i : i + 64]
            optimizer.zero_grad()
            loss_fn(net(X_fit[rows]), y_fit[rows]).backward()
            optimizer.step()
        with torch.no_grad():
            float(loss_fn(net(X_val), y_val))
    return n_fit * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default="mlp_digits")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-jobs", type=int, default=1, help="folds side by side (1: exact epochs)"
    )
    parser.add_argument("--pruners", nargs="+", default=["none", "hyperband"])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the throughput trial")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet()
    print(
        f"# {args.study}, {args.trials} trials, seed {args.seed}, rev {revision()}, load {load()}"
    )
    results = {
        p: run_study(args.study, p, args.trials, args.seed, args.n_jobs) for p in args.pruners
    }
    base = results[args.pruners[0]]
    rows = []
    for pruner, r in results.items():
        states = ", ".join(f"{n} {s.lower()}" for s, n in r["counts"].items() if n)
        rows.append(
            [
                pruner,
                f"{r['epochs']:.0f}",
                f"{100 * r['epochs'] / base['epochs']:.0f}%",
                f"{r['wall']:.1f}",
                f"{r['best']:.4f}",
                f"{100 * (r['best'] - base['best']) / abs(base['best']):+.2f}%",
                states,
            ]
        )
    headers = ["pruner", "epochs", "vs first", "wall s", "best", "best vs first", "trials"]
    print(table(headers, rows, right={1, 2, 3, 4, 5}))
    ours, plain = throughput(args.study, args.epochs, args.repeats)
    print()
    print(
        table(
            ["training loop", "samples/s", "ratio"],
            [
                ["hpo trial (cross_validate, holdout)", f"{ours:,.0f}", f"{ours / plain:.2f}x"],
                ["plain torch loop", f"{plain:,.0f}", "1.00x"],
            ],
            right={1, 2},
        )
    )


if __name__ == "__main__":
    main()
