"""Sample efficiency: best-so-far value against trials spent, hpo's defaults against Optuna's.

    python -m benchmarks.sample_efficiency                     # 4 studies, hpo + optuna, 5 seeds
    python -m benchmarks.sample_efficiency --arms hpo optuna gp wilcoxon gp+wilcoxon random
    python -m benchmarks.sample_efficiency --studies xgb_f1 mlp_f1 --seeds 0 --trials 6

Issue 15, target 7 ("better results per trial"): on a shipped study, hpo
reaches the final best of Optuna's defaults in at most half the trials, on at
least 3 of the 4 default studies.

Arms, all through the same hpo.runner.run: the same objective, data, CV folds
(seeded by the run's seed), metric and budget; only the sampler and pruner differ.

  hpo          the study as shipped: conf/config.yaml's sampler (tpe) and pruner (median),
               the sampler reseeded per trial number as hpo does (hpo.samplers.trial_sampler)
  optuna       what optuna.create_study() gives: TPESampler(seed=<the run's seed>) and
               MedianPruner(), no other argument, one sampler for the whole study
  gp           sampler=gp (conf/sampler/gp.yaml), pruner as shipped
  wilcoxon     pruner=wilcoxon (conf/pruner/wilcoxon.yaml), sampler as shipped
  gp+wilcoxon  both
  random       sampler=random, pruner as shipped

With Optuna 5.1 hpo's tpe and median configs are Optuna's defaults: TPE
n_startup_trials 10, group off, constant_liar on, multivariate true (Optuna's
None, which is true for one objective); MedianPruner 5/0/1. So hpo and optuna
differ only in seeding: hpo draws each trial from SeedSequence([seed, number]),
which also gives its tpe, gp and random arms the same random start-up points
under one seed. The first line of output says what differs, from the built
objects (setting_differences).

Printed per study: median best-so-far every 5 trials, the median final best,
the median trials to reach the optuna arm's final median best (and how many
seeds did), then PASS/MISS: hpo reached it within half the budget; then one
table over the studies and the target (PASS on at least 3 of 4 studies). The
curves go to --html (default outputs/sample_efficiency.html, git-ignored).

Each run has its own Optuna journal in a fresh temporary folder, tracking off
(tracking.enabled=false), no progress bar, and no end-of-study extras that do
not change the trials (evaluation.curves=false, evaluation.bbc_boot=0).
Best-so-far after n trials is the best value of the COMPLETE trials among the
first n (by trial number): a pruned or failed trial spends one trial and is
never a best. Medians are over seeds; a seed with no complete trial yet, or one
that never reaches a target, counts as the worst.

Default studies: the two cheapest XGBoost and the two cheapest MLP studies of
the shipped single-objective ones. Seconds per trial here (2 cores, load about
1, seed 0, the study's n_trials, hpo and optuna arms): xgb_f1 0.1-0.17 and
xgb_rmse 0.1, against xgb_imbalanced_ap's 0.8 (20,000 rows); mlp_f1 1.0 and
mlp_rmse 0.5-1.7 (pruning varies), against mlp_digits' 1.1-1.3, close, but
mlp_f1 and mlp_rmse also score the same data sets (breast_cancer, diabetes),
folds scheme and metrics (F1 maximized, RMSE minimized) as the XGBoost pair,
so each family is seen on the same two problems, in both directions.

Default budget: each study's own n_trials (xgb_f1 50, xgb_rmse 40, mlp_f1 30,
mlp_rmse 30). One seed of the default run (8 runs) took 2.6 minutes, so the
default run (4 studies x hpo, optuna x 5 seeds, 40 runs) takes about 13
minutes on an idle machine, up to about 20 under other load (a load of 4
roughly doubled the MLP runs' wall time); each extra arm adds about 6 (gp
somewhat more: its fit grows with the trials). --trials N gives every study N.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, compose, load, placed, quiet, revision, run_hpo, scratch, table

STUDIES = ("xgb_f1", "xgb_rmse", "mlp_f1", "mlp_rmse")
PEER = "optuna"  # the arm whose final median best the others are timed to
OURS = "hpo"
ARMS: dict[str, tuple[str, ...]] = {  # Hydra overrides of each arm (optuna: see configure)
    OURS: (),
    PEER: (),
    "gp": ("sampler=gp",),
    "wilcoxon": ("pruner=wilcoxon",),
    "gp+wilcoxon": ("sampler=gp", "pruner=wilcoxon"),
    "random": ("sampler=random",),
}
COMMON = (
    "progress=false",
    "tracking.enabled=false",
    "evaluation.curves=false",
    "evaluation.bbc_boot=0",
)
STEP = 5  # best-so-far columns every STEP trials

Trial = tuple[str, float | None]  # (state name, value) of a finished trial


# --- the arithmetic (tests/benchmarks/test_sample_efficiency.py) ---------------------------


def best_so_far(trials: Sequence[Trial], maximize: bool) -> list[float | None]:
    """After each trial, the best value of the COMPLETE trials so far (None: none yet)."""
    best: float | None = None
    series: list[float | None] = []
    for state, value in trials:
        if state == "COMPLETE" and value is not None and not math.isnan(value):
            better = best is None or (value > best if maximize else value < best)
            best = value if better else best
        series.append(best)
    return series


def reaches(value: float | None, target: float, maximize: bool) -> bool:
    return value is not None and (value >= target if maximize else value <= target)


def trials_to_reach(series: Sequence[float | None], target: float, maximize: bool) -> int | None:
    """The first trial count whose best-so-far is at least as good as ``target``; None: never."""
    return next((n for n, v in enumerate(series, 1) if reaches(v, target, maximize)), None)


def median_of(values: Sequence[float | None], none_is: float) -> float | None:
    """The median, a None counted as ``none_is`` (an infinity: the worst); None if it is one."""
    if not values:
        return None
    m = statistics.median([none_is if v is None else v for v in values])
    return None if math.isinf(m) else m


def worst(maximize: bool) -> float:
    """What a missing best counts as in a median: the worst value of the direction."""
    return -math.inf if maximize else math.inf


def median_curve(curves: Sequence[Sequence[float | None]], maximize: bool) -> list[float | None]:
    """Median best-so-far over seeds at each trial count (over the curves that long)."""
    longest = max((len(c) for c in curves), default=0)
    return [
        median_of([c[i] for c in curves if i < len(c)], worst(maximize)) for i in range(longest)
    ]


def median_reach(counts: Sequence[int | None]) -> tuple[float | None, int]:
    """Median trials to reach a target over seeds (never: worst) and how many seeds reached it."""
    return median_of(counts, math.inf), sum(c is not None for c in counts)


def checkpoints(budget: int, step: int = STEP) -> list[int]:
    """The trial counts of the table's columns: every ``step``, and the budget."""
    marks = list(range(step, budget + 1, step))
    return marks if marks and marks[-1] == budget else [*marks, budget]


def in_half(reach: float | None, budget: int) -> bool:
    """The target: the peer's final best reached in at most half the budget."""
    return reach is not None and reach <= budget / 2


def setting_differences(ours: Any, theirs: Any) -> list[str]:
    """``name: ours vs theirs`` of the plain settings (numbers, flags, names) of two samplers
    or pruners that differ; seeds and random states are not compared."""
    if type(ours) is not type(theirs):
        return [f"class: {type(ours).__name__} vs {type(theirs).__name__}"]
    plain = (int, float, bool, str, type(None), tuple, type)
    mine, other = vars(ours), vars(theirs)
    return [
        f"{name.lstrip('_')}: {mine[name]!r} vs {other.get(name)!r}"
        for name in mine
        if "seed" not in name
        and isinstance(mine[name], plain)
        and isinstance(other.get(name), plain)
        and mine[name] != other.get(name)
    ]


# --- running the studies --------------------------------------------------------------------


@dataclass
class Run:
    trials: list[Trial]
    maximize: bool
    wall: float
    best: float | None  # the runner's own summary, to check best_so_far against

    @property
    def series(self) -> list[float | None]:
        return best_so_far(self.trials, self.maximize)


@dataclass
class Result:
    study: str
    budget: int
    maximize: bool
    runs: dict[str, list[Run]] = field(default_factory=dict)  # arm -> one per seed

    def curve(self, arm: str) -> list[float | None]:
        return median_curve([r.series for r in self.runs[arm]], self.maximize)

    def finals(self, arm: str) -> list[float | None]:
        return [r.series[-1] if r.trials else None for r in self.runs[arm]]

    def final(self, arm: str) -> float | None:
        return median_of(self.finals(arm), worst(self.maximize))

    def reach(self, arm: str, target: float | None) -> tuple[float | None, int]:
        if target is None:
            return None, 0
        return median_reach(
            [trials_to_reach(r.series, target, self.maximize) for r in self.runs[arm]]
        )


def configure(study: str, arm: str, seed: int) -> Any:
    """The typed config of one run; the optuna arm's sampler and pruner are Optuna's defaults,
    built with no argument but the seed (whatever this Optuna's defaults are)."""
    cfg = compose([f"study={study}", f"seed={seed}", *COMMON, *ARMS[arm]])
    if arm == PEER:
        cfg.sampler = {
            "_target_": "optuna.samplers.TPESampler",
            "seed": seed,
            "hpo": {"reseed_per_trial": False},  # one sampler, seeded once, as create_study's
        }
        cfg.pruner = {"_target_": "optuna.pruners.MedianPruner"}
    return cfg


def run_arm(study: str, arm: str, seed: int, trials: int | None) -> Run:
    import optuna
    from optuna.study import StudyDirection

    from hpo.storages import open_storage

    cfg = configure(study, arm, seed)
    with scratch("bench-sample-efficiency-") as tmp:
        cfg = placed(cfg, tmp, trials or int(cfg.study.n_trials))
        phases = run_hpo(cfg)
        loaded = optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))
        done = sorted(
            (t for t in loaded.get_trials(deepcopy=False) if t.state.is_finished()),
            key=lambda t: t.number,
        )
        maximize = loaded.direction == StudyDirection.MAXIMIZE
    return Run(
        [(t.state.name, t.value) for t in done], maximize, phases.total, phases.result.best_value
    )


def defaults_line(study: str, seed: int) -> str:
    """How the hpo arm's sampler and pruner differ from the optuna arm's."""
    from hpo.runner import make_plan
    from hpo.samplers import sampler_traits

    ours, peer = (make_plan(configure(study, arm, seed)) for arm in (OURS, PEER))
    cfg = configure(study, OURS, seed)
    diffs = [f"sampler {d}" for d in setting_differences(ours.sampler, peer.sampler)]
    diffs += [f"pruner {d}" for d in setting_differences(ours.pruner, peer.pruner)]
    if sampler_traits(cfg.sampler).reseed_per_trial:
        diffs.append("hpo reseeds its sampler per trial number (seed, number)")
    return f"hpo vs optuna defaults on {study}: " + ("; ".join(diffs) or "none")


# --- tables and plot ------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def reach_cell(reach: tuple[float | None, int], seeds: int) -> str:
    n, reached = reach
    return f"{'never' if n is None else f'{n:g}'} ({reached}/{seeds})"


def study_table(result: Result, arms: Sequence[str], seeds: int) -> str:
    marks = checkpoints(result.budget)
    target = result.final(PEER)
    rows = []
    for arm in arms:
        curve = result.curve(arm)
        pruned = statistics.median(
            sum(s == "PRUNED" for s, _ in r.trials) for r in result.runs[arm]
        )
        rows.append(
            [
                arm,
                *(fmt(curve[m - 1]) if m <= len(curve) else "-" for m in marks),
                fmt(result.final(arm)),
                reach_cell(result.reach(arm, target), seeds),
                f"{pruned:g}",
                f"{statistics.median(r.wall for r in result.runs[arm]):.1f}",
            ]
        )
    headers = ["arm", *(f"@{m}" for m in marks), "final", f"to {fmt(target)}", "pruned", "wall s"]
    return table(headers, rows, right=set(range(1, len(headers))))


def verdict(result: Result, seeds: int) -> tuple[bool, str]:
    target = result.final(PEER)
    reach = result.reach(OURS, target)
    ok = in_half(reach[0], result.budget)
    line = (
        f"{result.study}: hpo reached optuna's final median best {fmt(target)} in a median "
        f"{reach_cell(reach, seeds)} of {result.budget} trials: "
        f"{'PASS' if ok else 'MISS'} (target <= {result.budget / 2:g})"
    )
    return ok, line


def overall_table(results: Sequence[Result], arms: Sequence[str], seeds: int) -> str:
    rows = []
    for r in results:
        target = r.final(PEER)
        cells = [f"{fmt(r.final(a))} / {reach_cell(r.reach(a, target), seeds)}" for a in arms]
        direction = "max" if r.maximize else "min"
        rows.append([r.study, direction, str(r.budget), fmt(target), *cells])
    headers = ["study", "dir", "trials", "optuna final", *(f"{a}: final / to reach" for a in arms)]
    return table(headers, rows, right=set(range(2, len(headers))))


def plot(results: Sequence[Result], arms: Sequence[str], path: Path, title: str) -> None:
    from plotly import colors
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    cols = min(2, len(results))
    rows = math.ceil(len(results) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[r.study for r in results])
    palette = colors.qualitative.Plotly
    for i, r in enumerate(results):
        row, col = i // cols + 1, i % cols + 1
        for j, arm in enumerate(arms):
            curve = r.curve(arm)
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(curve) + 1)),
                    y=curve,
                    mode="lines",
                    name=arm,
                    legendgroup=arm,
                    showlegend=i == 0,
                    line={"color": palette[j % len(palette)], "shape": "hv"},
                ),
                row=row,
                col=col,
            )
        target = r.final(PEER)
        if target is not None:
            fig.add_hline(y=target, line_dash="dot", line_color="grey", row=row, col=col)
        fig.update_xaxes(title_text="trials", row=row, col=col)
        fig.update_yaxes(title_text=f"best ({'max' if r.maximize else 'min'})", row=row, col=col)
    fig.update_layout(title=title, height=380 * rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="+", default=list(STUDIES), help=" ".join(STUDIES))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=[OURS, PEER])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=0, help="per run (0: the study's n_trials)")
    parser.add_argument(
        "--html",
        type=Path,
        default=REPO / "outputs" / "sample_efficiency.html",
        help="the median best-so-far curves (default: outputs/sample_efficiency.html)",
    )
    args = parser.parse_args()
    if PEER not in args.arms:
        parser.error(f"--arms needs {PEER}: the other arms are timed to its final best")
    if args.trials < 0:
        parser.error("--trials must be >= 0")
    arms = list(dict.fromkeys(args.arms))
    html = args.html.resolve()  # before scratch() changes the CWD
    quiet()
    for study in args.studies:  # read conf/ and studies/ once, now
        for seed in args.seeds:
            for arm in arms:
                configure(study, arm, seed)
    load_before = load()
    rev = revision()
    print(f"hpo {rev}; seeds {args.seeds}; arms {arms}; load average {load_before}", flush=True)
    print(defaults_line(args.studies[0], args.seeds[0]), flush=True)
    results = []
    for study in args.studies:
        budget = args.trials or int(compose([f"study={study}"]).study.n_trials)
        result: Result | None = None
        for seed in args.seeds:
            for arm in arms:
                run = run_arm(study, arm, seed, budget)
                if result is None:
                    result = Result(study, budget, run.maximize)
                result.runs.setdefault(arm, []).append(run)
                check = "" if run.series[-1:] == [run.best] else f" (summary says {run.best})"
                print(
                    f"  {study} seed {seed} {arm:<12} {run.wall:6.1f} s  "
                    f"{len(run.trials)} trials, best {fmt(run.series[-1] if run.trials else None)}"
                    + check,
                    flush=True,
                )
        assert result is not None
        results.append(result)

    seeds = len(args.seeds)
    print()
    passed = 0
    for result in results:
        print(f"{result.study}: median best-so-far after n trials, over {seeds} seed(s)")
        print(study_table(result, arms, seeds))
        ok, line = verdict(result, seeds)
        passed += ok
        print(line)
        print()
    print("overall: median final best / median trials to reach optuna's final median best")
    print(overall_table(results, arms, seeds))
    wanted = math.ceil(0.75 * len(results))
    print(
        f"target (hpo reaches optuna's final best in <= half the trials on >= 3 of 4 studies): "
        f"{passed}/{len(results)} studies, {'PASS' if passed >= wanted else 'MISS'}"
    )
    plot(results, arms, html, f"Median best-so-far over seeds {args.seeds} (hpo {rev})")
    print(f"curves: {html}")
    print(f"load average {load_before} -> {load()}")


if __name__ == "__main__":
    main()
