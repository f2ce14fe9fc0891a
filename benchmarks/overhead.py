"""Per-trial platform overhead: a no-op objective under hpo, plain Optuna + MLflow, and bare Optuna.

    python -m benchmarks.overhead                   # 300 trials, 3 interleaved repeats
    python -m benchmarks.overhead --trials 100 --repeats 5
    python -m benchmarks.overhead --breakdown       # hpo's loop time by component
    python -m benchmarks.overhead --profile         # cProfile of hpo's trial loop

Variants (same xgb_f1 search space, suggested every trial; no model is fitted):

  hpo       hpo.runner.run(cfg): Optuna journal file + MLflow SQLite, full logging
            (child run per trial, params, metrics, fold series, user attrs).
            The objective is benchmarks.noop.NoopObjective on a breast_cancer holdout;
            the sampler is conf/sampler/tpe.yaml (multivariate, constant_liar).
  peer      optuna.create_study(storage=sqlite) + optuna_integration.MLflowCallback
            (MLflow SQLite); objective: random probabilities -> f1 on the same holdout.
  floor     the peer's objective on in-memory Optuna, TPESampler(seed=0), no logging.
  floor-mv  as floor, with hpo's TPE settings: the sampler's own share of hpo's time.

Per-trial time is (loop + drain) / N. The loop is, for hpo, its first claim() to
the start of finish() (found by wrapping both at runtime), for the others
study.optimize(); drain is hpo's wait in finish() for the trial writes it queued
to its MLflow writer process. A second measure needs no hooks: the marginal cost
(total(N) - total(--small)) / (N - --small). Startup (plan, storages, MLflow
schema) and hpo's end-of-study step (summary, plots, refit + log_model) are
fixed costs, reported separately.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import (
    Phases,
    Probes,
    compose,
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

VARIANTS = ("hpo", "peer", "floor", "floor-mv")
WHAT = {
    "hpo": "hpo.runner.run: journal file + MLflow sqlite",
    "peer": "optuna sqlite + MLflowCallback (sqlite)",
    "floor": "in-memory optuna, TPESampler(seed=0)",
    "floor-mv": "in-memory optuna, hpo's TPE settings",
}


# Storage, tracking and n_trials are set per run by common.placed() (in a temp dir).
HPO_OVERRIDES = [
    "study=xgb_f1",
    "study.objective._target_=benchmarks.noop.NoopObjective",
    "study.data=breast_cancer",
    "cv=holdout",
    "pruner=none",
    "study.name=noop_overhead",
    "progress=false",
    "seed=0",
]


def run_hpo_variant(
    n_trials: int,
    on_loop_start: Callable[[], Any] | None = None,
    on_loop_end: Callable[[], Any] | None = None,
) -> Phases:
    with scratch("bench-hpo-") as tmp:
        cfg = placed(compose(HPO_OVERRIDES), tmp, n_trials)
        return run_hpo(cfg, on_loop_start, on_loop_end)


def _peer_objective() -> Callable[[Any], float]:
    """Random probabilities on the same stratified 20% holdout of breast_cancer, scored by f1."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedShuffleSplit

    X, y = load_breast_cancer(return_X_y=True)
    _, valid = next(StratifiedShuffleSplit(1, test_size=0.2, random_state=0).split(X, y))
    y_valid = y[valid]
    rng = np.random.default_rng(0)
    space = load_space("xgb_f1")

    def objective(trial: Any) -> float:
        suggest(trial, space)
        return float(f1_score(y_valid, rng.random(len(y_valid)) >= 0.5))

    return objective


def _tpe(variant: str) -> Any:
    import optuna

    from hpo.samplers import build_sampler
    from hpo.space import parse_space

    if variant == "floor-mv":
        cfg = compose(HPO_OVERRIDES)
        return build_sampler(cfg.sampler, parse_space(cfg.study.space))  # conf/sampler/tpe.yaml
    return optuna.samplers.TPESampler(seed=0)


def run_optuna_variant(variant: str, n_trials: int) -> Phases:
    import optuna

    objective = _peer_objective()
    with scratch(f"bench-{variant}-") as tmp:
        start = time.perf_counter()
        callbacks: list[Any] = []
        storage: Any = None
        if variant == "peer":
            import mlflow
            from optuna_integration import MLflowCallback

            uri = f"sqlite:///{tmp / 'mlflow_peer.db'}"
            mlflow.MlflowClient(uri).search_experiments(max_results=1)  # create the schema now
            callbacks = [MLflowCallback(tracking_uri=uri, metric_name="f1")]
            storage = f"sqlite:///{tmp / 'optuna.db'}"
        study = optuna.create_study(
            storage=storage,
            study_name="noop_overhead",
            direction="maximize",
            sampler=_tpe(variant),
        )
        loop_start = time.perf_counter()
        study.optimize(objective, n_trials=n_trials, callbacks=callbacks)
        stop = time.perf_counter()
        if variant == "peer":
            import mlflow

            mlflow.set_tracking_uri(None)
    return Phases(total=stop - start, startup=loop_start - start, loop=stop - loop_start, end=0.0)


def run_variant(variant: str, n_trials: int) -> Phases:
    if variant == "hpo":
        return run_hpo_variant(n_trials)
    return run_optuna_variant(variant, n_trials)


def benchmark(args: argparse.Namespace) -> None:
    variants = [v for v in VARIANTS if v in args.variants]
    compose(HPO_OVERRIDES)  # read conf/ and studies/ once, now
    load_before = load()
    rev = revision()  # what was imported, not what HEAD is when the run ends
    if args.warmup:
        print(f"warm-up: {args.warmup} trials of each variant (not counted)", flush=True)
        for variant in variants:
            run_variant(variant, args.warmup)
    big: dict[str, list[Phases]] = {v: [] for v in variants}
    small: dict[str, list[Phases]] = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for variant in rotate(variants, repeat):
            phases = run_variant(variant, args.trials)
            big[variant].append(phases)
            line = (
                f"  repeat {repeat + 1}/{args.repeats} {variant:<8} "
                f"{phases.trials_wall / args.trials * 1000:7.2f} ms/trial  "
                f"(total {phases.total:.1f} s"
            )
            if args.small:
                small[variant].append(run_variant(variant, args.small))
                line += f"; {args.small} trials: {small[variant][-1].total:.1f} s"
            print(line + ")", flush=True)

    def per_trial(p: Phases) -> float:
        return p.trials_wall / args.trials

    def marginal(variant: str) -> list[float | None]:
        if not args.small:
            return []
        return [
            (b.total - s.total) / (args.trials - args.small)
            for b, s in zip(big[variant], small[variant], strict=True)
        ]

    peer = med([per_trial(p) for p in big.get("peer", [])])
    peer_marginal = med(marginal("peer")) if "peer" in big else None
    rows = []
    for variant in variants:
        runs = big[variant]
        mine, mine_marginal = med([per_trial(p) for p in runs]), med(marginal(variant))
        rows.append(
            [
                variant,
                WHAT[variant],
                spread([per_trial(p) for p in runs], 1000, 2),
                spread(marginal(variant), 1000, 2),
                spread([p.loop for p in runs], 1, 2),
                spread([p.drain for p in runs], 1, 2) if variant == "hpo" else "-",
                spread([p.startup for p in runs], 1, 2),
                spread([p.end for p in runs], 1, 2) if variant == "hpo" else "-",
                spread([p.total for p in runs], 1, 2),
                f"{mine / peer:.2f}" if peer and mine is not None else "-",
                f"{mine_marginal / peer_marginal:.2f}"
                if peer_marginal and mine_marginal is not None
                else "-",
            ]
        )
    headers = [
        "variant",
        "what runs",
        "per-trial ms",
        "marginal ms",
        "loop s",
        "drain s",
        "startup s",
        "end-of-study s",
        "total s",
        "x peer",
        "x peer (marg.)",
    ]
    print()
    print(
        f"hpo {rev}. No-op objective, {args.trials} trials, TPE, "
        f"{args.repeats} interleaved repeats; "
        f"each cell: median [min-max] over repeats; load average {load_before} -> {load()}"
    )
    print(table(headers, rows, right=set(range(2, len(headers)))))
    print(
        "per-trial = (loop + drain) / trials. loop: hpo from its first claim() to the start of "
        "finish(), the others study.optimize;\n"
        "  drain: the wait in finish() for trial writes hpo queued to its MLflow writer "
        "process (0 when it writes inline)\n"
        f"marginal = (total at {args.trials} trials - total at {args.small} trials) / "
        f"{args.trials - args.small}: all costs that grow with trials, whatever the phase\n"
        "startup = before the loop (plan, storages, MLflow schema and writer, study); "
        "end-of-study = rest of hpo's finish() (summary, plots, refit, log_model)\n"
        "x peer = median / peer's median; target for hpo: <= 0.33 (issue 15), per trial"
    )
    if "hpo" in big and "floor-mv" in big:
        hpo_ms = med([per_trial(p) for p in big["hpo"]])
        floor_ms = med([per_trial(p) for p in big["floor-mv"]])
        if hpo_ms is not None and floor_ms is not None:
            print(
                f"hpo's platform cost above its own sampler (hpo - floor-mv): "
                f"{(hpo_ms - floor_ms) * 1000:.2f} ms/trial"
            )


def profile(args: argparse.Namespace) -> None:
    profiler = cProfile.Profile()
    phases = run_hpo_variant(args.trials, profiler.enable, profiler.disable)
    loop = phases.loop if phases.loop is not None else phases.total
    print(
        f"hpo variant, {args.trials} trials: loop {loop:.2f} s "
        f"({loop / args.trials * 1000:.2f} ms/trial, under cProfile), then "
        f"{phases.drain:.2f} s draining queued writes; only the trial loop of the study "
        f"process is profiled (not an MLflow writer process); load {load()}"
    )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(args.profile_sort).print_stats(args.profile_top)
    print(out.getvalue())


def breakdown(args: argparse.Namespace) -> None:
    """Where hpo's loop time goes, by wrapping the functions it calls (no profiler)."""
    import optuna
    from mlflow.tracking import MlflowClient

    import hpo.runner.loop as hs
    import hpo.runner.trial as ht
    import hpo.tracking.writes as hw
    from hpo.space import Space
    from hpo.tracking.tracker import Tracker

    tpe_sampler = optuna.samplers.TPESampler
    probes = Probes()
    targets = [
        (hs, "claim", "claim: file lock, count trials, study.ask"),
        (Space, "suggest", "space.suggest: 9 suggest_*, excluding the row below"),
        (tpe_sampler, "sample_relative", "  TPE: sample_relative (lazily, at the first suggest)"),
        (Tracker, "start_trial", "Tracker.start_trial: MLflow create_run"),
        (optuna.trial.Trial, "set_user_attr", "trial.set_user_attr (journal write each)"),
        (ht, "cross_validate", "cross_validate, excluding the row below"),
        (optuna.trial.Trial, "report", "  trial.report + should_prune (journal write)"),
        (optuna.study.Study, "tell", "study.tell (journal write)"),
        (Tracker, "end_trial", "Tracker.end_trial, excluding the three rows below"),
        (hw, "score_once", "  score_once: OOF metrics (inline writer only)"),
        (MlflowClient, "log_batch", "  MLflow log_batch (inline writer only)"),
        (MlflowClient, "set_terminated", "  MLflow set_terminated (inline writer only)"),
        (hs, "show", "show: study.best_value + progress/log line"),
    ]
    for owner, attr, label in targets:
        probes.wrap(owner, attr, label)
    try:
        phases = run_hpo_variant(args.trials, probes.start, probes.stop)
    finally:
        probes.restore()
    loop = phases.loop if phases.loop is not None else phases.total
    n = args.trials
    secs = dict(probes.seconds)
    labels = [t[2] for t in targets]
    for parent, children in ((1, (2,)), (5, (6, 7)), (9, (10, 11))):
        secs[labels[parent]] -= sum(secs[labels[c]] for c in children)  # exclusive parents
    rows = [
        [
            label,
            f"{probes.calls[label] / n:.1f}",
            f"{secs[label] / n * 1000:.2f}",
            f"{secs[label] / loop * 100:.1f}",
        ]
        for label in labels
    ]
    other = loop - sum(secs[label] for label in labels)
    rows.append(["rest of the loop", "", f"{other / n * 1000:.2f}", f"{other / loop * 100:.1f}"])
    rows.append(["loop total", "", f"{loop / n * 1000:.2f}", "100.0"])
    rows.append(
        [
            "after the loop: drain of queued trial writes",
            "",
            f"{phases.drain / n * 1000:.2f}",
            f"{phases.drain / loop * 100:.1f}",
        ]
    )
    print()
    print(
        f"hpo {revision()} variant, {n} trials, one run: wall time per trial by component "
        f"(inclusive wall time of wrapped calls in the study process during the loop; "
        f"no profiler); load {load()}"
    )
    print(table(["component", "calls/trial", "ms/trial", "% of loop"], rows, right={1, 2, 3}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per run (300)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (3)")
    parser.add_argument(
        "--warmup", type=int, default=10, help="uncounted warm-up trials per variant (10; 0: off)"
    )
    parser.add_argument(
        "--small",
        type=int,
        default=20,
        help="also run each variant at this many trials per repeat, for the marginal "
        "per-trial cost from totals (20; 0: off)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="which variants to run (all)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile hpo's trial loop once and print it"
    )
    parser.add_argument(
        "--profile-sort",
        default="cumulative",
        choices=["cumulative", "tottime", "ncalls"],
        help="pstats sort key for --profile (cumulative)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time hpo's loop components once (wrapped calls, no profiler) and print them",
    )
    parser.add_argument(
        "--profile-top", type=int, default=25, help="entries shown by --profile (25)"
    )
    args = parser.parse_args()
    if args.trials < 2 or args.repeats < 1:
        parser.error("--trials must be >= 2 and --repeats >= 1")
    if not 0 <= args.small < args.trials:
        parser.error("--small must be >= 0 and below --trials")
    quiet()
    if args.profile:
        profile(args)
    elif args.breakdown:
        breakdown(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
