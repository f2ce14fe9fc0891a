"""LoRA rank against macro-F1, trainable parameters, adapter size and latency: one Pareto study.

    python -m benchmarks.lora_ranks                      # grid over r, the rest fixed
    python -m benchmarks.lora_ranks --seeds 0 1 2        # the same study with three seeds
    python -m benchmarks.lora_ranks --search --trials 24 # the study's whole space, TPE

Runs lora_intents_pareto (maximize macro-F1, minimize trainable parameters)
once and prints one row per rank r. By default the study's space is replaced
by r alone (grid sampler, one trial per rank: 1, 2, 4, 8, 16, 32) with every
other knob fixed (FIXED, below), so the rows differ only in r; with several
--seeds the study runs once per seed (seeding the generated data, the split, the
initialisation and the batch order) and macro-F1 is shown as mean
[min-max], the other columns as medians. With
--search the study's own space runs under multi-objective TPE, and each row
is the best trial at that rank (target modules, alpha, lr then vary too).

The LoRA paper (Hu et al., 2021) found that small ranks often do as well as
large ones; this table is where to see whether that holds here, not an
assumption. Timings are per example, on one torch thread, and depend on the
machine's load (printed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from benchmarks.common import compose, load, placed, quiet, revision, scratch, table

RANKS = [1, 2, 4, 8, 16, 32]
FIXED = {
    "target_modules": "query_value",
    "alpha_ratio": 2.0,
    "lora_dropout": 0.1,
    "lr": 3.0e-3,
}


def run_study(args: argparse.Namespace, seed: int) -> tuple[list[Any], set[int]]:
    """The finished trials of one lora_intents_pareto run, and the numbers of the front's."""
    import optuna

    from hpo.runner import run
    from hpo.storages import open_storage

    overrides = [
        "study=lora_intents_pareto",
        f"seed={seed}",
        "pruner=none",
        "progress=false",
        "tracking.enabled=false",
        f"sampler={'tpe' if args.search else 'grid'}",
    ]
    cfg = compose(overrides)
    if not args.search:
        cfg.study.objective.update(FIXED)
        cfg.study.space = {"r": {"type": "categorical", "choices": RANKS}}
    if args.epochs:
        cfg.study.objective["epochs"] = args.epochs
    if args.per_intent:  # a smaller generated data set, for a quick look
        cfg.study.data = {"name": "intents", "per_intent": args.per_intent}
    with scratch("lora-ranks-") as tmp:
        cfg = placed(cfg, tmp, args.trials if args.search else len(RANKS))
        run(cfg)
        study = optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))
        return [t for t in study.trials if t.values], {t.number for t in study.best_trials}


def rows(runs: list[tuple[list[Any], set[int]]]) -> list[list[str]]:
    """One row per rank: in each run its best trial by macro-F1, summarized over the runs."""
    out = []
    ranks = sorted({int(t.params["r"]) for trials, _ in runs for t in trials})
    for r in ranks:
        best, on_front, n = [], 0, 0
        for trials, front in runs:
            at_r = [t for t in trials if int(t.params["r"]) == r]
            n += len(at_r)
            if at_r:
                best.append(max(at_r, key=lambda t: t.values[0]))
                on_front += best[-1].number in front
        f1 = [t.values[0] for t in best]
        info = [t.user_attrs["cv"]["info"] for t in best]

        def median(key: str, info: list[dict[str, float]] = info) -> float:
            return float(statistics.median(i[key] for i in info))

        out.append(
            [
                str(r),
                str(n),
                f"{statistics.mean(f1):.4f}"
                + (f" [{min(f1):.3f}-{max(f1):.3f}]" if len(f1) > 1 else ""),
                f"{int(best[0].values[1]):,}",
                f"{median('trainable_pct'):.3f}",
                f"{median('adapter_kb'):.0f}",
                f"{median('latency_ms_b1'):.1f}",
                f"{median('latency_ms_b32'):.2f}",
                f"{median('train_seconds'):.0f}",
                str(best[0].params.get("target_modules", FIXED["target_modules"])),
                f"{on_front}/{len(best)}",
            ]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", action="store_true", help="the study's space under TPE")
    parser.add_argument("--trials", type=int, default=24, help="with --search")
    parser.add_argument("--epochs", type=int, default=0, help="0: the study's (3)")
    parser.add_argument("--per-intent", type=int, default=0, help="0: the study's data (200)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    quiet()
    load_before = load()
    started = time.perf_counter()
    runs = [run_study(args, seed) for seed in args.seeds]
    wall = time.perf_counter() - started
    mode = f"--search, {args.trials} trials, TPE" if args.search else f"grid over r, {FIXED}"
    seeds = " ".join(map(str, args.seeds))
    print(f"lora_intents_pareto ({mode}), seeds {seeds}, revision {revision()}")
    print(f"wall {wall:.0f} s; load before {load_before}, after {load()}\n")
    headers = [
        "r", "trials", "macro-F1", "trainable params", "% of model", "adapter KB",
        "latency b1 ms", "latency b32 ms/ex", "train s", "target modules", "on front",
    ]  # fmt: skip
    print(table(headers, rows(runs), right=set(range(9))))


if __name__ == "__main__":
    main()
