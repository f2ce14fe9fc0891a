"""Scale: one study of many trials (no-op objective) on the journal file and on PostgreSQL.

    python -m benchmarks.scale                            # 1,000 trials, journal and PostgreSQL
    python -m benchmarks.scale --trials 10000 --storages journal   # issue 15's 10,000
    python -m benchmarks.scale --no-browser               # skip the runs table in Chromium
    python -m benchmarks.scale --profile 200,2000         # what grows with the trial count

Issue 15, target 6: in a study of N trials, the per-trial time of the last 100
trials is at most 2x the first 100's; the study process's resident memory stays
flat; the MLflow metric rows per trial are bounded; the end of the study
(summary, importances and plots, refit, model) takes under a minute; and MLflow's
runs table of the study still opens.

Each study runs hpo itself (``hpo.runner.run`` through benchmarks.common, as the hpo
variant of benchmarks/overhead.py: benchmarks.noop.NoopObjective on a breast_cancer
holdout, the xgb_f1 space, conf/sampler/tpe.yaml, full MLflow logging on SQLite) in
a process of its own, so that its memory is its own. PostgreSQL gets a fresh
database per run at HPO_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/
postgres), dropped afterwards. Beside them, the floor: in-memory Optuna with the
same TPE settings and space (overhead.py's floor-mv), because TPE's own cost grows
with the trials it models; hpo's own share is hpo minus the floor.

  per trial    claim to claim (the last: to finish()), found by wrapping hpo's claim at
               runtime; the floor: objective call to objective call
  resident MB  the study process at the claims of trial 100 (warm: imports, first TPE
               fits, MLflow's first writes done), N/2 and N-1, and the peak over the
               loop; its child processes (the MLflow writer) apart
  metric rows  rows of MLflow's ``metrics`` table per child run (mean and max) and on
               the parent run, from the study's mlflow.db
  end of study hpo's finish() after its wait for queued trial writes (the drain)
  runs table   ``python -m hpo.ui`` with the overrides ``hpo.cli.look_command`` keeps,
               until headless Chromium has drawn the runs table (benchmarks/look.py)

A second table splits a trial's time into the loop's parts (claim, TPE, MLflow's
create_run, the progress line, ...) for the first and the last 100 trials, timed by
wrapping them at runtime. ``--profile 200,2000`` runs each storage at both sizes with
cProfile (CPU time) on the last 100 trials only and prints the functions whose time
per trial grew most.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import itertools
import json
import os
import pstats
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Probes, compose, load, placed, quiet, revision, run_hpo, table

STORAGES = ("journal", "postgres")
STUDY_NAME = "noop_scale"
OVERRIDES = [
    "study=xgb_f1",
    "study.objective._target_=benchmarks.noop.NoopObjective",
    "study.data=breast_cancer",
    "cv=holdout",
    "pruner=none",
    f"study.name={STUDY_NAME}",
    "progress=false",
    "seed=0",
]
WINDOW = 100  # the first and last trials compared
RATIO_TARGET = 2.0
MEMORY_FACTOR = 1.2  # end <= MEMORY_FACTOR x start + slack (slack: see memory_slack)
END_TARGET = 60.0  # seconds
MB = 2**20


# --- one study, in a process of its own ------------------------------------------------


def child_hpo(storage: str, folder: Path, trials: int, pg_url: str | None, prof: int) -> dict:
    """Run the study in ``folder`` (the CWD); per-trial times, memory, finish() timings."""
    import psutil

    import hpo.runner.loop as hs

    quiet()
    overrides = [*OVERRIDES, "storage=postgres"] if storage == "postgres" else OVERRIDES
    cfg = placed(compose(overrides), folder, trials)
    if pg_url:
        cfg.storage.url = pg_url
    me = psutil.Process()
    stamps: list[float] = []
    cpu: list[float] = []
    rss: list[int] = []
    children: list[tuple[int, int]] = []  # (trial, MB of the child processes)
    # CPU time of this process: growth a loaded machine's waits do not hide
    profiler = cProfile.Profile(time.process_time) if prof else None
    parts = Probes()  # the loop's parts, summed until the claims of trial WINDOW and N-WINDOW
    marks: dict[str, dict[str, float]] = {}
    orig_claim = hs.claim

    def claim(*args: Any, **kwargs: Any) -> Any:
        k = len(stamps)
        if k == WINDOW:
            marks["first"] = dict(parts.seconds)
        if k == trials - WINDOW:
            marks["last"] = dict(parts.seconds)
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        rss.append(me.memory_info().rss)
        if k % 250 == 0 or k == trials:
            kids = me.children(recursive=True)
            children.append((k, sum(_rss(p) for p in kids)))
        if profiler is not None and k == max(trials - prof, 0):
            profiler.enable()
        return orig_claim(*args, **kwargs)

    probes = Probes()
    for owner, attr, label in _finish_parts():
        probes.wrap(owner, attr, label)

    def loop_end() -> None:
        if profiler is not None:
            profiler.disable()
        cpu.append(time.process_time())
        parts.stop()
        marks["end"] = dict(parts.seconds)
        probes.start()

    hs.claim = claim
    for owner, attr, label in _loop_parts():
        parts.wrap(owner, attr, label)
    parts.start()
    try:
        phases = run_hpo(cfg, on_loop_end=loop_end)
    finally:
        parts.stop()
        parts.restore()
        hs.claim = orig_claim
        probes.stop()
        probes.restore()
    if profiler is not None:
        profiler.dump_stats(str(folder / "loop.prof"))
    assert phases.loop is not None and phases.startup is not None, "the loop was not seen"
    finish_at = stamps[0] + phases.loop
    counts = phases.result.counts if phases.result is not None else {}
    return {
        "per_trial": per_trial(stamps, finish_at, trials),
        "cpu_per_trial": per_trial(cpu[:-1], cpu[-1], trials),
        "rss": [r / MB for r in rss],
        "children": children,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "startup": phases.startup,
        "loop": phases.loop,
        "drain": phases.drain,
        "end": phases.end,
        "total": phases.total,
        "counts": counts,
        "finish_parts": {k: [probes.seconds[k], probes.calls[k]] for k in probes.seconds},
        "loop_parts": {  # ms per trial in the first and the last WINDOW trials
            k: [
                marks["first"][k] / WINDOW * 1000,
                (marks["end"][k] - marks["last"][k]) / WINDOW * 1000,
            ]
            for k in parts.seconds
        },
    }


def per_trial(stamps: list[float], finish_at: float, trials: int) -> list[float]:
    """Seconds of each trial: from its claim to the next claim (the last: to finish())."""
    edges = [*stamps[:trials], finish_at]
    return [b - a for a, b in itertools.pairwise(edges)]


def _rss(process: Any) -> int:
    try:
        return int(process.memory_info().rss) // MB
    except Exception:  # ended meanwhile
        return 0


def _loop_parts() -> list[tuple[Any, str, str]]:
    """What the loop calls, wrapped to time it (inclusive; indented rows nest)."""
    import optuna

    import hpo.runner.loop as hs
    import hpo.runner.trial as ht
    from hpo.space import Space
    from hpo.tracking.tracker import Tracker

    tpe = optuna.samplers.TPESampler
    return [
        (hs, "claim", "claim: study lock, read and count the trials, ask"),
        (Space, "suggest", "space.suggest"),
        (tpe, "infer_relative_search_space", "  TPE: infer_relative_search_space"),
        (tpe, "sample_relative", "  TPE: sample_relative"),
        (Tracker, "start_trial", "Tracker.start_trial: MLflow create_run"),
        (ht, "cross_validate", "cross_validate: objective, scores"),
        (optuna.study.Study, "tell", "study.tell"),
        (Tracker, "end_trial", "Tracker.end_trial: to the writer process"),
        (hs, "show", "show: best value, progress line"),
    ]


def _finish_parts() -> list[tuple[Any, str, str]]:
    """What finish() calls, wrapped to time it (inclusive; some nest in others)."""
    import optuna.visualization as vis

    import hpo.report
    from hpo.tracking.tracker import Tracker

    fin = importlib.import_module("hpo.runner.finish")  # hpo.runner.finish is the function

    return [
        (hpo.report, "summarize", "summary (counts, best trial)"),
        (fin, "rivals_tied", "rivals tied with the best"),
        (fin, "_refit", "refit of the best"),
        (fin, "bias_variance", "bias/variance curves"),
        (vis, "plot_optimization_history", "plot: optimization history"),
        (vis, "plot_param_importances", "plot: parameter importances (fANOVA)"),
        (vis, "plot_parallel_coordinate", "plot: parallel coordinate"),
        (vis, "plot_slice", "plot: slice"),
        (fin, "page", "report page (HTML)"),
        (Tracker, "log_study", "parent run: numbers, tags, config, report"),
        (Tracker, "describe_study", "parent run: description, runs view"),
        (fin, "_log_model", "log_model of the refit best"),
    ]


def child_floor(trials: int) -> dict:
    """In-memory Optuna, hpo's TPE settings and space, the peer's no-op objective."""
    import optuna
    import psutil

    from benchmarks.overhead import _peer_objective, _tpe

    quiet()
    me = psutil.Process()
    objective = _peer_objective()
    stamps: list[float] = []
    cpu: list[float] = []
    rss: list[int] = []

    def timed(trial: Any) -> float:
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        rss.append(me.memory_info().rss)
        return objective(trial)

    study = optuna.create_study(direction="maximize", sampler=_tpe("floor-mv"))
    study.optimize(timed, n_trials=trials)
    done, cpu_done = time.perf_counter(), time.process_time()
    return {
        "per_trial": per_trial(stamps, done, trials),
        "cpu_per_trial": per_trial(cpu, cpu_done, trials),
        "rss": [r / MB for r in rss],
    }


# --- what the parent measures ------------------------------------------------------------


def spawn(args: list[str], folder: Path) -> dict:
    """``python -m benchmarks.scale --child ...`` in ``folder``; the dict it wrote."""
    out = folder / "result.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks.scale", *args, "--folder", str(folder)]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(out.read_text()))


def metric_rows(folder: Path) -> dict[str, float]:
    """Rows of MLflow's metrics table per child run (mean, max, first and last 100) and on
    the parent run, from the study's mlflow.db."""
    from hpo.names import ROLE_STUDY, ROLE_TAG, TRIAL_TAG

    with contextlib.closing(sqlite3.connect(folder / "mlflow.db")) as db:
        runs = {
            run: {"rows": 0}
            for (run,) in db.execute(
                "SELECT r.run_uuid FROM runs r JOIN experiments e"
                " ON e.experiment_id = r.experiment_id WHERE e.name = ?",
                (STUDY_NAME,),
            )
        }
        for run, n in db.execute("SELECT run_uuid, COUNT(*) FROM metrics GROUP BY run_uuid"):
            if run in runs:
                runs[run]["rows"] = n
        for run, key, value in db.execute(
            "SELECT run_uuid, key, value FROM tags WHERE key IN (?, ?)", (TRIAL_TAG, ROLE_TAG)
        ):
            if run in runs:
                runs[run][key] = value
    rows = [(r["rows"], r.get(TRIAL_TAG), r.get(ROLE_TAG)) for r in runs.values()]
    total = sum(n for n, _, _ in rows)
    trials = sorted((int(trial), n) for n, trial, _ in rows if trial is not None)
    parent = [n for n, _, role in rows if role == ROLE_STUDY]
    counts = [n for _, n in trials]
    return {
        "runs": len(trials),
        "total": total,
        "mean": sum(counts) / len(counts) if counts else 0.0,
        "max": max(counts, default=0),
        "first_max": max(counts[:WINDOW], default=0),
        "last_max": max(counts[-WINDOW:], default=0),
        "parent": parent[0] if parent else 0,
        "db_mb": (folder / "mlflow.db").stat().st_size / MB,
    }


def look(folder: Path) -> dict[str, Any]:
    """The look command of this study (hpo.cli.look_command), seconds until its URL line
    and until Chromium has drawn the runs table with the metric's column and a trial's
    run, and the run count the table shows (MLflow lists runs a page at a time)."""
    from benchmarks.look import ui_page
    from hpo.cli import look_command

    shown = look_command([*OVERRIDES, f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"])
    argv = shown.split()[3:]  # after "python -m hpo.ui"; no argument has a space here
    counted = "no run count shown"
    with (folder / "ui.log").open("w") as log:
        try:
            with ui_page(argv, folder, log) as seen:
                # holdout CV: one fold, so the metric without its _std column
                page = seen.page
                metric = page.get_by_role("columnheader").filter(has_text=re.compile(r"^f1$"))
                metric.first.wait_for(timeout=180_000)
                page.get_by_text("trial-", exact=False).first.wait_for(timeout=180_000)
                table_at = time.perf_counter() - seen.started
                with contextlib.suppress(Exception):
                    shown_count = page.get_by_text(re.compile(r"\d+ matching runs"))
                    counted = shown_count.first.inner_text(timeout=10_000)
        except Exception as err:
            said = (folder / "ui.log").read_text().strip().splitlines()[-1:]
            raise RuntimeError(f"{str(err).splitlines()[0]} (hpo.ui: {said})") from err
    command = shown.replace(str(folder), "DIR")
    return {"command": command, "url_at": seen.url_at, "table_at": table_at, "counted": counted}


@contextlib.contextmanager
def database(storage: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database for the run (benchmarks/distributed.py), dropped after."""
    if storage != "postgres":
        yield None
        return
    from benchmarks.distributed import fresh_db

    with fresh_db("postgres") as url:
        yield url


# --- the tables --------------------------------------------------------------------------


def mean_ms(values: Sequence[float]) -> float:
    return statistics.fmean(values) * 1000


def median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) * 1000


def windows(per: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean and median ms of the first and the last WINDOW trials."""
    first, last = per[:WINDOW], per[-WINDOW:]
    return mean_ms(first), mean_ms(last), median_ms(first), median_ms(last)


def memory_slack(floor: dict, start: int, end: int) -> float:
    """MB the in-memory floor grew from trial ``start`` to ``end``: Optuna's own trial
    objects, which every Optuna storage keeps in memory (the journal replays its file into
    them, RDBStorage's cache holds the finished ones), and TPE's arrays. hpo cannot keep a
    study in Optuna and hold less; what it adds on top must stay within the factor."""
    rss = floor["rss"]
    return max(rss[min(end, len(rss) - 1)] - rss[min(start, len(rss) - 1)], 0.0)


def kb_per_trial(rss: Sequence[float], start: int, end: int) -> float:
    end = min(end, len(rss) - 1)
    return (rss[end] - rss[start]) * 1024 / max(end - start, 1)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def rows_for(storage: str, res: dict, floor: dict, trials: int) -> list[list[str]]:
    hf, hl, hfm, hlm = windows(res["per_trial"])
    ff, fl, ffm, flm = windows(floor["per_trial"])
    cf, cl, _, _ = windows(res["cpu_per_trial"])
    fcf, fcl, _, _ = windows(floor["cpu_per_trial"])
    ratio = hl / hf
    own_first, own_last = hf - ff, hl - fl
    own = own_last / own_first
    start_at = min(WINDOW, trials - 1)
    rss = res["rss"]
    start, middle, end = rss[start_at], rss[trials // 2], rss[trials - 1]
    peak = max(rss)
    slack = memory_slack(floor, start_at, trials - 1)
    limit = MEMORY_FACTOR * start + slack
    kids = res["children"]
    kid_at = next((mb for k, mb in kids if k >= start_at), kids[0][1]) if kids else 0
    metrics = res["metrics"]
    end_s = res["end"]
    rows = [
        [
            storage,
            f"per trial (TPE included), first {WINDOW} -> last {WINDOW}, ms: mean (median)",
            f"{hf:.1f} ({hfm:.1f}) -> {hl:.1f} ({hlm:.1f}): {ratio:.2f}x",
            f"<= {RATIO_TARGET:g}x",
            verdict(ratio <= RATIO_TARGET),
        ],
        [
            "",
            "  floor: in-memory Optuna, same TPE",
            f"{ff:.1f} ({ffm:.1f}) -> {fl:.1f} ({flm:.1f}): {fl / ff:.2f}x",
            "",
            "",
        ],
        [
            "",
            "  hpo's own (hpo - floor), mean",
            f"{own_first:.1f} -> {own_last:.1f}: {own:.2f}x",
            f"<= {RATIO_TARGET:g}x",
            verdict(own <= RATIO_TARGET),
        ],
        [
            "",
            "  CPU ms of the study process, mean: hpo; floor",
            f"{cf:.1f} -> {cl:.1f}: {cl / cf:.2f}x; {fcf:.1f} -> {fcl:.1f}: {fcl / fcf:.2f}x",
            "",
            "",
        ],
        [
            "",
            f"resident MB: trial {start_at} / {trials // 2} / {trials - 1}, loop peak",
            f"{start:.0f} / {middle:.0f} / {end:.0f}, peak {peak:.0f}",
            f"end <= {MEMORY_FACTOR:g} x {start:.0f} + {slack:.0f} = {limit:.0f}",
            verdict(end <= limit),
        ],
        [
            "",
            "  growth, KB per trial: hpo / floor",
            f"{kb_per_trial(rss, start_at, trials - 1):.1f} / "
            f"{kb_per_trial(floor['rss'], start_at, trials - 1):.1f}",
            "",
            "",
        ],
        [
            "",
            "  writer (child processes) MB; process peak",
            f"{kid_at} -> {kids[-1][1] if kids else 0}; {res['peak_mb']:.0f} with finish()",
            "",
            "",
        ],
        [
            "",
            "metric rows per trial run: mean, max (first/last 100); parent",
            f"{metrics['mean']:.1f}, {metrics['max']} ({metrics['first_max']}/"
            f"{metrics['last_max']}); {metrics['parent']}",
            f"max <= first {WINDOW}'s; parent <= {WINDOW}",
            verdict(metrics["max"] <= metrics["first_max"] and metrics["parent"] <= WINDOW),
        ],
        [
            "",
            "end of study s: finish() after its drain",
            f"{end_s:.1f} (drain {res['drain']:.1f})",
            f"< {END_TARGET:g}",
            verdict(end_s < END_TARGET),
        ],
    ]
    if "look" in res:
        seen = res["look"]
        drawn = seen.get("table_at")
        rows.append(
            [
                "",
                "runs table drawn in Chromium, s (URL line); runs listed",
                f"{drawn:.1f} ({seen['url_at']:.1f}); {seen['counted']}"
                if drawn
                else f"not drawn: {seen['error']}",
                "opens",
                verdict(bool(drawn)),
            ]
        )
    return rows


def loop_rows(storage: str, res: dict) -> list[list[str]]:
    """ms per trial of the loop's parts in the first and the last WINDOW trials."""
    first_all, last_all = windows(res["per_trial"])[:2]
    out = []
    for label, (first, last) in res["loop_parts"].items():
        out.append([storage if not out else "", label, f"{first:.2f}", f"{last:.2f}"])
    top = [v for k, v in res["loop_parts"].items() if not k.startswith(" ")]
    rest = (first_all - sum(f for f, _ in top), last_all - sum(la for _, la in top))
    out.append(["", "rest of the loop", f"{rest[0]:.2f}", f"{rest[1]:.2f}"])
    out.append(["", "per trial", f"{first_all:.2f}", f"{last_all:.2f}"])
    for row in out:
        row.append(f"{float(row[3]) - float(row[2]):+.2f}")
    return out


def detail_rows(storage: str, res: dict) -> list[list[str]]:
    """The wall time of the study and of finish()'s parts, largest first."""
    parts = sorted(res["finish_parts"].items(), key=lambda kv: -kv[1][0])
    m = res["metrics"]
    out = [
        [
            storage,
            "study",
            f"{res['total']:.1f}",
            f"startup {res['startup']:.1f}, loop {res['loop']:.1f}, drain {res['drain']:.1f}, "
            f"end {res['end']:.1f}; {res['counts']}; mlflow.db {m['db_mb']:.0f} MB, "
            f"{m['runs']} trial runs",
        ]
    ]
    out += [["", label, f"{secs:.2f}", f"{calls} call(s)"] for label, (secs, calls) in parts]
    return out


def growth_rows(res: dict, floor: dict, trials: int, key: str) -> list[str]:
    """Mean ms per trial (``key``: wall or CPU) in each tenth of the study: hpo/floor."""
    cells = []
    tenth = max(trials // 10, 1)
    for at in range(0, trials, tenth):
        h = mean_ms(res[key][at : at + tenth])
        f = mean_ms(floor[key][at : at + tenth])
        cells.append(f"{h:.0f}/{f:.0f}")
    return cells


def benchmark(args: argparse.Namespace) -> None:
    from benchmarks.common import scratch

    rev, load_before, began = revision(), load(), time.perf_counter()
    print(f"floor: {args.trials} trials of in-memory Optuna ...", flush=True)
    with scratch("hpo-scale-floor-") as tmp:
        floor = spawn(["--child", "floor", "--trials", str(args.trials)], tmp)
    results: dict[str, dict] = {}
    for storage in args.storages:
        print(f"{storage}: {args.trials} trials of hpo ...", flush=True)
        with scratch(f"hpo-scale-{storage}-") as tmp, database(storage) as url:
            child = ["--child", storage, "--trials", str(args.trials)]
            res = spawn([*child, *(["--pg-url", url] if url else [])], tmp)
            res["metrics"] = metric_rows(tmp)
            if not args.no_browser:
                try:
                    res["look"] = look(tmp)
                except Exception as err:  # the row says MISS, with why
                    res["look"] = {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
            results[storage] = res
            print(f"  {storage}: {res['total']:.0f} s", flush=True)
    took = time.perf_counter() - began
    print()
    print(
        f"hpo {rev}. No-op objective, {args.trials} trials in one study, TPE (multivariate, "
        f"constant liar), MLflow on SQLite; load average {load_before} -> {load()}; "
        f"{took / 60:.1f} min in all"
    )
    rows = [r for s, res in results.items() for r in rows_for(s, res, floor, args.trials)]
    print(table(["storage", "figure", "measured", "target", ""], rows, right=set()))
    print(
        "per trial: claim to claim in the study process (the floor: objective call to call);\n"
        "memory: slack = what the in-memory floor grew over the same trials (Optuna's own "
        "trial objects and TPE's arrays);\n"
        "metric rows: MLflow's metrics table per trial run; bounded when no trial run holds "
        f"more than the first {WINDOW} do and the parent run at most {WINDOW} (no series "
        "that follows the trials)"
    )
    print()
    tenths = [
        [f"{s}, {what}", *growth_rows(res, floor, args.trials, key)]
        for s, res in results.items()
        for what, key in (("wall", "per_trial"), ("CPU", "cpu_per_trial"))
    ]
    n = len(tenths[0]) - 1
    tenth = max(args.trials // 10, 1)
    headers = ["storage", *(f"{i * tenth}-" for i in range(n))]
    print("mean ms per trial in each tenth of the study, hpo/floor:")
    print(table(headers, tenths, right=set(range(1, n + 1))))
    print()
    print(f"where a trial's time goes, ms per trial in the first and the last {WINDOW} trials:")
    parts = [r for s, res in results.items() for r in loop_rows(s, res)]
    first, last = f"first {WINDOW}", f"last {WINDOW}"
    print(table(["storage", "part", first, last, "growth"], parts, right={2, 3, 4}))
    print()
    print("wall seconds of the study and of finish()'s parts (inclusive; some nest):")
    detail = [r for s, res in results.items() for r in detail_rows(s, res)]
    print(table(["storage", "step", "seconds", ""], detail, right={2}))


# --- what grows: a profile of the last 100 trials at two sizes --------------------------


def profile(args: argparse.Namespace) -> None:
    from benchmarks.common import scratch

    sizes = sorted(int(n) for n in args.profile.split(","))
    if len(sizes) != 2 or sizes[0] < 2 * WINDOW:
        raise SystemExit(f"--profile takes two sizes of at least {2 * WINDOW}, e.g. 200,2000")
    rev = revision()
    for storage in args.storages:
        stats: dict[int, dict[str, tuple[float, float]]] = {}
        loops: dict[int, float] = {}
        for n in sizes:
            print(f"{storage}: {n} trials, cProfile on the last {WINDOW} ...", flush=True)
            with scratch(f"hpo-scale-prof-{storage}-") as tmp, database(storage) as url:
                child = ["--child", storage, "--trials", str(n), "--prof", str(WINDOW)]
                res = spawn([*child, *(["--pg-url", url] if url else [])], tmp)
                stats[n] = _by_function(pstats.Stats(str(tmp / "loop.prof")))
                loops[n] = mean_ms(res["per_trial"][-WINDOW:])
        small, big = sizes
        print()
        print(
            f"hpo {rev}, {storage}: ms per trial over the last {WINDOW} trials under cProfile: "
            f"{loops[small]:.1f} at {small} trials, {loops[big]:.1f} at {big}; load {load()}"
        )
        for key, title in ((0, "cumulative"), (1, "own time (tottime)")):
            grown = sorted(
                (
                    (big_t[key] - stats[small].get(name, (0.0, 0.0))[key], name)
                    for name, big_t in stats[big].items()
                ),
                reverse=True,
            )[: args.profile_top]
            rows = [
                [
                    name,
                    f"{stats[small].get(name, (0.0, 0.0))[key] / WINDOW * 1000:.2f}",
                    f"{stats[big][name][key] / WINDOW * 1000:.2f}",
                    f"{g / WINDOW * 1000:+.2f}",
                ]
                for g, name in grown
            ]
            print(f"\nlargest growth, {title}:")
            print(
                table(
                    ["function", f"ms/trial at {small}", f"ms/trial at {big}", "growth"],
                    rows,
                    right={1, 2, 3},
                )
            )
        print()


def _by_function(stats: pstats.Stats) -> dict[str, tuple[float, float]]:
    """``file:line(function)`` -> (cumulative, own) seconds."""
    out: dict[str, tuple[float, float]] = {}
    for (path, line, func), (_, _, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = "/".join(Path(path).parts[-2:]) if path != "~" else ""
        out[f"{short}:{line}({func})"] = (cumtime, tottime)
    return out


# --- the command ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="trials in the study (1000)")
    parser.add_argument(
        "--storages",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(STORAGES),
        help="journal,postgres (both)",
    )
    parser.add_argument("--no-browser", action="store_true", help="skip the runs table check")
    parser.add_argument(
        "--profile", metavar="SMALL,BIG", help="profile the last 100 trials at two sizes"
    )
    parser.add_argument("--profile-top", type=int, default=12, help="rows per profile table")
    parser.add_argument("--child", choices=[*STORAGES, "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pg-url", help=argparse.SUPPRESS)
    parser.add_argument("--prof", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "floor":
            result = child_floor(args.trials)
        else:
            result = child_hpo(args.child, args.folder, args.trials, args.pg_url, args.prof)
        (args.folder / "result.json").write_text(json.dumps(result))
        return
    if args.trials < 2 * WINDOW:
        parser.error(f"--trials must be at least {2 * WINDOW}")
    unknown = set(args.storages) - set(STORAGES)
    if unknown or not args.storages:
        parser.error(f"--storages: choose from {','.join(STORAGES)}")
    if args.profile:
        profile(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
