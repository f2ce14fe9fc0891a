"""XGBoost study cost: hpo's xgb_imbalanced_ap study against plain Optuna + cross_val_score.

    python -m benchmarks.xgb_cost                          # 30 trials, median pruner, tracking on
    python -m benchmarks.xgb_cost --pruner median none     # what fold-level pruning saves
    python -m benchmarks.xgb_cost --tracking on off        # what MLflow tracking costs
    python -m benchmarks.xgb_cost --max-bin 0 256          # the study's 64 bins against 256
    python -m benchmarks.xgb_cost --trials 30 --repeats 3

Both sides: data hpo.data.load_data("imbalanced", "classification", 0) (20,000 x 40,
10% positives), the search space of studies/xgb_imbalanced_ap.yaml, TPE seeded 0,
the same number of trials, the same 5 stratified folds (shuffle, random_state 0),
average precision.

  ours  hpo.runner.run(study=xgb_imbalanced_ap): XGBoost native API with early stopping
        on an inner split of each training fold, fold-level pruning (pruner=median
        unless --pruner none), Optuna journal file, MLflow SQLite (unless --tracking
        off), end-of-study plots + refit + log_model. Timed end to end.
  peer  optuna.create_study(TPESampler(seed=0)) in memory, objective =
        cross_val_score(XGBClassifier(**params), X, y, cv=StratifiedKFold(5, shuffle=True,
        random_state=0), scoring="average_precision").mean(); XGBClassifier defaults
        otherwise (100 rounds, no early stopping), no tracking. Timed end to end,
        data loading included.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Phases,
    compose,
    cpu_seconds,
    load,
    load_space,
    med,
    placed,
    quiet,
    revision,
    rotate,
    run_hpo,
    scratch,
    spread,
    suggest,
    table,
)

STUDY = "xgb_imbalanced_ap"


@dataclass(frozen=True)
class Variant:
    name: str
    pruner: str | None = None  # None: the peer
    tracking: str | None = None
    max_bin: int | None = None  # None: the study's own setting
    report_every: int | None = None  # None: the study's own setting; 0: fold-level pruning
    extra: tuple[str, ...] = ()  # more Hydra overrides (--set)

    @property
    def ours(self) -> bool:
        return self.pruner is not None


@dataclass
class Outcome:
    phases: Phases
    best: float | None
    counts: str
    folds: int | None = None  # folds scored over the whole study
    rounds: float | None = None  # mean boosting rounds per fold


def ours_overrides(v: Variant) -> list[str]:
    """Storage, tracking store and n_trials are set per run by common.placed() (temp dir)."""
    overrides = [
        f"study={STUDY}",
        f"study.name={STUDY}_bench",
        "sampler=tpe",
        "seed=0",
        "progress=false",
    ]
    if v.pruner != "median":
        overrides.append(f"pruner={v.pruner}")
    if v.tracking == "off":
        overrides.append("tracking.enabled=false")
    if v.max_bin is not None:
        overrides.append(f"study.objective.max_bin={v.max_bin}")
    if v.report_every is not None:
        overrides.append(f"++study.objective.report_every={v.report_every or 'null'}")
    return overrides + list(v.extra)


def run_ours(v: Variant, n_trials: int) -> Outcome:
    with scratch("bench-xgb-ours-") as tmp:
        phases = run_hpo(placed(compose(ours_overrides(v)), tmp, n_trials))
        folds, rounds = _fit_facts(tmp / "optuna.journal")
    summary = phases.result
    counts = "/".join(str(summary.counts.get(k, 0)) for k in ("COMPLETE", "PRUNED", "FAIL"))
    return Outcome(phases, summary.best_value, counts, folds, rounds)


def _fit_facts(journal: Path) -> tuple[int | None, float | None]:
    """Folds scored over all trials and the mean boosting rounds kept per fold (ours)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        storage = JournalStorage(JournalFileBackend(str(journal)))
        study = optuna.load_study(study_name=f"{STUDY}_bench", storage=storage)
    except Exception:  # the layout of the runner's store is not this script's contract
        return None, None
    facts = []  # {"fold_values", "info"}: top-level user attrs, or grouped under one attr
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        grouped = [v for v in attrs.values() if isinstance(v, dict) and "fold_values" in v]
        facts += grouped[:1] or ([attrs] if "fold_values" in attrs else [])
    folds = sum(len(f["fold_values"]) for f in facts)
    rounds = [(f.get("info") or {}).get("n_rounds") for f in facts]
    kept = [r for r in rounds if r is not None]
    return folds, (sum(kept) / len(kept) if kept else None)


def run_peer(n_trials: int) -> Outcome:
    import optuna
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from xgboost import XGBClassifier

    from hpo.data import load_data

    space = load_space(STUDY)
    cpu = cpu_seconds()
    start = time.perf_counter()
    data = load_data("imbalanced", "classification", 0)
    X, y = data.X, data.y
    folds = StratifiedKFold(5, shuffle=True, random_state=0)

    def objective(trial: Any) -> float:
        params = suggest(trial, space)
        scores = cross_val_score(
            XGBClassifier(**params), X, y, cv=folds, scoring="average_precision"
        )
        return float(scores.mean())

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    loop_start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    stop = time.perf_counter()
    phases = Phases(
        total=stop - start,
        startup=loop_start - start,
        loop=stop - loop_start,
        cpu=cpu_seconds() - cpu,
    )
    rounds = XGBClassifier().get_params().get("n_estimators") or 100  # None means 100
    return Outcome(phases, study.best_value, f"{len(study.trials)}/0/0", 5 * n_trials, rounds)


def run(v: Variant, n_trials: int) -> Outcome:
    return run_ours(v, n_trials) if v.ours else run_peer(n_trials)


def _preload() -> None:
    """Import what either side imports lazily, so the first variant timed pays no imports."""
    import mlflow.xgboost  # noqa: F401
    import optuna.visualization  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import xgboost  # noqa: F401

    import hpo.runner  # noqa: F401
    import objectives.xgboost  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials per study (30, the study's)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats (1)")
    parser.add_argument(
        "--pruner",
        nargs="+",
        choices=["median", "none", "hyperband", "sha"],
        default=["median"],
        help="our pruner(s): median (the default config), none, hyperband, sha",
    )
    parser.add_argument(
        "--tracking",
        nargs="+",
        choices=["on", "off"],
        default=["on"],
        help="our MLflow tracking: on and/or off (tracking.enabled=false)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="uncounted warm-up trials of ours and the peer before timing (0: off; the "
        "libraries both sides use are imported before timing anyway)",
    )
    parser.add_argument(
        "--max-bin",
        nargs="+",
        type=int,
        default=[0],
        help="our XGBoost histogram bins: 0 keeps the study's (64); 256 is XGBoost's default",
    )
    parser.add_argument(
        "--report-every",
        nargs="+",
        type=int,
        default=[-1],
        help="our boosting rounds between pruner reports: -1 keeps the study's, 0 prunes "
        "after whole folds only",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="more Hydra overrides for ours, e.g. pruner.min_resource=4",
    )
    args = parser.parse_args()
    if args.trials < 1 or args.repeats < 1:
        parser.error("--trials and --repeats must be >= 1")
    quiet()

    peer = Variant("peer")
    variants = [
        Variant(
            f"ours pruner={p} tracking={t}"
            + (f" max_bin={b}" if b else "")
            + (f" report_every={r}" if r >= 0 else "")
            + "".join(f" {o}" for o in args.set),
            p,
            t,
            b or None,
            r if r >= 0 else None,
            tuple(args.set),
        )
        for p in args.pruner
        for t in args.tracking
        for b in args.max_bin
        for r in args.report_every
    ]
    everything = [*variants, peer]
    _preload()
    for v in variants:
        compose(ours_overrides(v))  # read conf/ and studies/ once, now
    load_before = load()
    rev = revision()  # what was imported, not what HEAD is when the run ends
    if args.warmup:
        print(f"warm-up: {args.warmup} trial(s) of ours and the peer (not counted)", flush=True)
        run(variants[0], args.warmup)
        run(peer, args.warmup)
    results: dict[Variant, list[Outcome]] = {v: [] for v in everything}
    for repeat in range(args.repeats):
        order = rotate([v.name for v in everything], repeat)
        for name in order:
            v = next(x for x in everything if x.name == name)
            outcome = run(v, args.trials)
            results[v].append(outcome)
            best = f"{outcome.best:.4f}" if outcome.best is not None else "-"
            print(
                f"  repeat {repeat + 1}/{args.repeats} {v.name:<32} "
                f"{outcome.phases.total:7.1f} s  best {best}",
                flush=True,
            )

    peer_time = med([o.phases.total for o in results[peer]])
    peer_loop = med([o.phases.trials_wall for o in results[peer]])
    peer_best = med([o.best for o in results[peer]])
    rows = []
    for v in everything:
        runs = results[v]
        total = med([o.phases.total for o in runs])
        loop = med([o.phases.trials_wall for o in runs])
        best = med([o.best for o in runs])
        rows.append(
            [
                v.name,
                spread([o.phases.total for o in runs], 1, 1),
                spread([o.phases.trials_wall for o in runs], 1, 1),
                spread([o.phases.cpu for o in runs], 1, 1),
                spread([o.phases.end for o in runs], 1, 1) if v.ours else "-",
                runs[-1].counts,
                str(runs[-1].folds) if runs[-1].folds is not None else "-",
                f"{runs[-1].rounds:.0f}" if runs[-1].rounds is not None else "-",
                f"{best:.4f}" if best is not None else "-",
                f"{total / peer_time:.2f}" if total and peer_time else "-",
                f"{loop / peer_loop:.2f}" if loop and peer_loop else "-",
                f"{(best - peer_best) / peer_best * 100:+.2f}%"
                if best is not None and peer_best
                else "-",
            ]
        )
    headers = [
        "variant",
        "wall s",
        "trials s",
        "CPU s",
        "end-of-study s",
        "complete/pruned/fail",
        "folds scored",
        "rounds/fold",
        "best AP",
        "time x peer",
        "trials x peer",
        "best vs peer",
    ]
    print()
    print(
        f"hpo {rev}, {STUDY}: {args.trials} trials, TPE seed 0, "
        f"{args.repeats} interleaved repeat(s); "
        f"times: median [min-max]; load average {load_before} -> {load()}"
    )
    print(table(headers, rows, right=set(range(1, len(headers)))))
    print(
        "wall = whole run (config, data, storages, trials, end of study); trials = the trial "
        "loop (ours: first claim() .. finish(), plus the drain of\n  trial writes queued to "
        "the MLflow writer process; peer: study.optimize)\n"
        "CPU = user + system CPU seconds of the whole run, the MLflow writer process included "
        "(less sensitive than wall time to other load)\n"
        "end-of-study = ours' finish() less the drain: summary, plots, refit on all rows, "
        "MLflow log_model (tracking on)\n"
        "folds scored = folds whose score counted (a pruned trial's unfinished wave is not "
        "counted); rounds/fold = mean boosting rounds kept (ours: early stopping, max 200)\n"
        "best vs peer = (best AP - peer's) / peer's; target: time x peer <= 0.50 with best "
        "within 0.5%"
    )


if __name__ == "__main__":
    main()
