"""MLP study cost: what epoch-level Hyperband saves, and what the platform adds to a torch loop.

    python -m benchmarks.mlp_pruning                        # mlp_digits, 20 trials, seed 0
    python -m benchmarks.mlp_pruning --study mlp_f1 --trials 30 --pruners none hyperband sha
    python -m benchmarks.mlp_pruning --pruners --repeats 7   # part 2 only

Part 1, pruning: the same study (same seed, sampler, n_trials, folds) with each
pruner; total epochs trained (sum over trials and folds, pruned trials
included), wall time of hpo.runner.run end to end, and the best value. Target:
Hyperband trains <= 50% of the epochs of pruner=none, best value within 1%.

Part 2, throughput: training samples per second (rows trained on x epochs /
wall seconds) of one trial, on one core (torch.set_num_threads(1), as the
objective's max_threads gives each fold), four ways on the same rows: the
training part of the study's holdout split (cv=holdout), of which the last
20% (the MLP's inner_valid_fraction) is the validation part. Every way trains
the same network (2 hidden layers of 128, ReLU), Adam lr 1e-3, the same batch
size (--batch-size), shuffled each epoch, the short last batch dropped, for
--epochs epochs (patience = epochs: no way stops early).

- hpo (memory): hpo.cv.cross_validate on the holdout fold, everything a trial
  of the study does except MLflow: stratified inner split, scaler fit, per
  epoch the train loss, the inner validation loss and study metric (the
  learning curves), a copy of the best weights, a report to a real Optuna
  trial (in-memory storage, the study's pruner) through
  hpo.pruning.QueuedStepReporter as a study does, then scoring the held-out
  rows with the best weights.
- hpo (journal): the same with the trial in an Optuna journal file, the
  default storage of ``python -m hpo``: each report is a locked, fsynced
  append (what a real study pays per epoch, on this machine's disk), made
  by QueuedStepReporter's writer thread while the next epoch trains.
- plain + early stop: a hand-written loop a practitioner would write for the
  same job: standardize with the training part's statistics, train, and per
  epoch the validation loss and a copy of the best weights, restored at the
  end. The reference: target hpo (memory) >= 0.9x of it.
- plain, train only: the same loop without any validation: the floor.

The loss is the objective's for the task (cross-entropy; binary: one logit
and BCE; regression: MSE on the standardized target). Each repeat runs the
four ways in a rotated order, after one untimed warm-up round; the table
shows the median and range over --repeats, per wall second and per CPU
second of this process (the CPU column is steadier when the machine is
shared: waiting for a core is not counted).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    compose,
    load,
    med,
    placed,
    quiet,
    revision,
    rotate,
    scratch,
    spread,
    table,
)


def run_study(study: str, pruner: str, trials: int, seed: int, n_jobs: int) -> dict[str, Any]:
    """One study run with ``pruner``: epochs, wall seconds, best value, states."""
    import optuna

    from hpo.runner import run
    from hpo.storages import open_storage

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


THROUGHPUT = ("hpo (memory)", "hpo (journal)", "plain + early stop", "plain, train only")
REFERENCE = "plain + early stop"


def throughput(
    study: str, epochs: int, repeats: int, batch: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Samples per wall second and per CPU second of one trial, each way, per repeat."""
    import optuna
    import torch

    from hpo.cv import cross_validate
    from hpo.pruning import QueuedStepReporter
    from hpo.runner import make_plan
    from hpo.storages import open_storage

    cfg = compose([f"study={study}", "cv=holdout", "n_jobs=1"])
    cfg.study.objective["max_epochs"] = epochs
    cfg.study.objective["patience"] = epochs  # no early stop: every way runs every epoch
    plan = make_plan(cfg)
    params = {"n_layers": 2, "width": 128, "optimizer": "adam", "lr": 1e-3, "batch_size": batch}
    train = plan.folds[0][0]
    n_fit = len(train) - math.ceil(len(train) * plan.objective.inner_valid_fraction)  # type: ignore[attr-defined]
    X, y = plan.data.X[train], plan.data.y[train]
    kind = "regression" if plan.data.task == "regression" else "classification"
    kind = "binary" if kind == "classification" and plan.data.n_classes <= 2 else kind
    walls: dict[str, list[float]] = {way: [] for way in THROUGHPUT}
    cpus: dict[str, list[float]] = {way: [] for way in THROUGHPUT}

    def hpo_trial(storage: Any) -> Callable[[], object]:
        study = optuna.create_study(storage=storage, direction=plan.direction, pruner=plan.pruner)
        reports = QueuedStepReporter(study, study.ask())  # as hpo.runner.evaluate reports

        def one_trial() -> None:
            setup = dataclasses.replace(plan.cv_setup, seed=0, leave_one_out=False, n_jobs=1)
            cross_validate(plan.objective, params, setup, reports.should_prune)
            reports.flush()  # as evaluate() does before telling the trial

        return one_trial

    def way_to_run(way: str, tmp: Path, repeat: int) -> Callable[[], object]:
        if way == "hpo (memory)":
            return hpo_trial(None)
        if way == "hpo (journal)":
            cfg.storage.url = f"journal:{tmp / f'{repeat}.journal'}"
            return hpo_trial(open_storage(cfg.storage))
        stop = way.endswith("stop")
        return lambda: _plain_loop(X, y, kind, n_fit, epochs, batch, early_stop=stop)

    with scratch("mlp-throughput-") as tmp:
        for repeat in range(repeats + 1):  # repeat 0 warms up: first calls, allocator, caches
            for way in rotate(THROUGHPUT, repeat):
                fn = way_to_run(way, tmp, repeat)
                torch.set_num_threads(1)  # as the harness gives one fold on its own (max_threads)
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                if repeat:
                    walls[way].append(time.perf_counter() - wall)
                    cpus[way].append(time.process_time() - cpu)
    samples = n_fit * epochs
    return {w: [samples / s for s in walls[w]] for w in THROUGHPUT}, {
        w: [samples / s for s in cpus[w]] for w in THROUGHPUT
    }


def _plain_loop(
    X: np.ndarray, y: np.ndarray, kind: str, n_fit: int, epochs: int, batch: int, early_stop: bool
) -> None:
    """A hand-written torch loop on the trial's training rows (module docstring)."""
    import torch
    from torch import nn

    Xt = torch.as_tensor(X, dtype=torch.float32)
    X_fit, X_val = Xt[:n_fit], Xt[n_fit:]
    mean, std = X_fit.mean(0), X_fit.std(0).clamp_min(1e-6)
    X_fit, X_val = (X_fit - mean) / std, (X_val - mean) / std
    if kind == "classification":
        yt, n_out, loss_fn = (
            torch.as_tensor(y, dtype=torch.long),
            int(y.max()) + 1,
            nn.CrossEntropyLoss(),
        )
    else:  # one output: binary (logit) or regression (standardized target)
        yt = torch.as_tensor(y, dtype=torch.float32)
        if kind == "regression":
            yt = (yt - yt[:n_fit].mean()) / yt[:n_fit].std()
        n_out, loss_fn = 1, nn.BCEWithLogitsLoss() if kind == "binary" else nn.MSELoss()
    y_fit, y_val = yt[:n_fit], yt[n_fit:]
    net = nn.Sequential(
        nn.Linear(X.shape[1], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, n_out), nn.Flatten(0) if n_out == 1 else nn.Identity(),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    best_loss, best_state = math.inf, None
    for _ in range(epochs):
        net.train()
        order = torch.randperm(n_fit)
        for i in range(0, n_fit - batch + 1, batch):
            rows = order[i : i + batch]
            optimizer.zero_grad()
            loss_fn(net(X_fit[rows]), y_fit[rows]).backward()
            optimizer.step()
        if not early_stop:
            continue
        net.eval()
        with torch.no_grad():
            loss = float(loss_fn(net(X_val), y_val))
        if loss < best_loss:
            best_loss = loss
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default="mlp_digits")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-jobs", type=int, default=0, help="folds side by side (0: the study default)"
    )
    parser.add_argument(
        "--pruners", nargs="*", default=["none", "hyperband"], help="none given: part 2 only"
    )
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the throughput trial")
    parser.add_argument("--batch-size", type=int, default=64, help="of the throughput trial")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet()
    print(
        f"# {args.study}, {args.trials} trials, seed {args.seed}, rev {revision()}, load {load()}"
    )
    if args.pruners:
        print(pruning_table(args))
        print()
    walls, cpus = throughput(args.study, args.epochs, args.repeats, args.batch_size)
    ref_wall, ref_cpu = med(walls[REFERENCE]), med(cpus[REFERENCE])
    assert ref_wall is not None and ref_cpu is not None
    rows = [
        [
            way,
            spread(walls[way], digits=0),
            f"{med(walls[way]) / ref_wall:.2f}x",  # type: ignore[operator]
            spread(cpus[way], digits=0),
            f"{med(cpus[way]) / ref_cpu:.2f}x",  # type: ignore[operator]
        ]
        for way in THROUGHPUT
    ]
    print(
        f"# one trial: {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.repeats} repeats interleaved; load {load()}"
    )
    headers = ["training loop", "samples/s [range]", "x plain", "samples/CPU s [range]", "x plain"]
    print(table(headers, rows, {1, 2, 3, 4}))


def pruning_table(args: argparse.Namespace) -> str:
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
    return table(headers, rows, right={1, 2, 3, 4, 5})


if __name__ == "__main__":
    main()
