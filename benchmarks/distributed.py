"""Distributed efficiency: K worker processes on one study, hpo against plain Optuna workers.

    python -m benchmarks.distributed                           # PostgreSQL and Redis, K=1,2,4,8
    python -m benchmarks.distributed --storages postgres --ks 1,8 --tracking off,on
    python -m benchmarks.distributed --grid-only
    python -m benchmarks.distributed --storages postgres --ks 1,8 --trials 160 --no-grid \
        --tracking on --who peer,hpo,fan                       # issue 15, target 4

Every trial sleeps ``--sleep`` seconds (0.2) and does nothing else, so a perfect
platform finishes K / sleep trials per second: efficiency = throughput / (K / sleep).

  hpo    K processes of ``python -m hpo`` (storage=postgres or storage=redis, sampler
         tpe: multivariate, constant liar), each with its own exact-budget claim
         under the study lock, heartbeats (PostgreSQL) and the watchdog.
  fan    one ``python -m hpo ... workers=K`` command: the parent makes the plan and the
         study, then forks its K workers (hpo/workers.py), so imports are paid once
  peer   K processes of plain Optuna: load_study + optimize with
         MaxTrialsCallback(n, states=(COMPLETE, PRUNED)), TPESampler with the same
         settings (unseeded), on the same database server.

Both get a fresh database (PostgreSQL: CREATE DATABASE per row, Optuna's tables
created before the clock starts; Redis: the --redis-url database, which must be
empty and is flushed between rows) and start their K processes at once.

  trials/s   finished trials / (first trial's start .. last trial's end), from the
             storage's datetime_start / datetime_complete: the steady-state rate
  wall/s     finished trials / (first Popen .. last exit): includes interpreter
             start, imports, opening the study and the end-of-study step
  finished   COMPLETE + PRUNED (the budget is --trials); dup = finished trials whose
             parameters repeat an earlier finished trial's
  cpu s      CPU seconds of the K worker processes, start-up included: on a 2-core
             machine, once cpu s approaches 2 x wall s the workers are CPU-bound
  cpu ms/trial  cpu s / finished: what one trial costs the machine, all processes in

The grid table: a --grid-points grid (one int parameter) with --grid-workers
workers; the budget is the grid size; 'evaluated' counts finished trials and
'dup' the grid points evaluated more than once. The machine's load average is
printed with each table: on a shared 2-core machine more than ~2 busy Python
processes contend for CPU, whatever the platform.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, load, quiet, revision, table

PG_URL = os.environ.get("HPO_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HPO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
STUDY_NAME = "dist_sleep"
STUDY = """
name: dist_sleep
objective: {_target_: benchmarks.noop.NoopObjective, sleep: SLEEP}
data: breast_cancer
cv: {scheme: holdout}
metric: roc_auc
n_trials: 80
space:
  SPACE
"""
TPE_SPACE = "x: {type: float, low: 0.0, high: 1.0}\n  c: {type: categorical, choices: [a, b, c]}"
GRID_SPACE = "x: {type: int, low: 0, high: GRIDMAX}"


@dataclass
class Row:
    storage: str
    who: str
    k: int
    tracking: bool
    finished: int
    dup: int
    span: float
    wall: float
    sleep: float
    load: float
    cpu: float = 0.0  # user + system CPU seconds of the K worker processes (and their children)
    failed: int = 0

    @property
    def rate(self) -> float:
        return self.finished / self.span if self.span else 0.0

    @property
    def efficiency(self) -> float:
        return self.rate / (self.k / self.sleep)

    @property
    def wall_rate(self) -> float:
        return self.finished / self.wall if self.wall else 0.0

    @property
    def cpu_per_trial(self) -> float:
        """Milliseconds of CPU per finished trial, over all the row's processes."""
        return 1000 * self.cpu / self.finished if self.finished else 0.0


# --- databases --------------------------------------------------------------------


@contextlib.contextmanager
def fresh_db(storage: str) -> Iterator[str]:
    """An empty Optuna database on the server: its URL (Optuna's tables created)."""
    if storage == "postgres":
        import psycopg

        name = f"hpo_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
        try:
            open_optuna(url).get_all_studies()  # creates the tables before the clock starts
            yield url
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    else:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        try:
            yield REDIS_URL
        finally:
            client.flushdb()


def check_redis_is_ours() -> None:
    import redis

    if redis.Redis.from_url(REDIS_URL).dbsize():
        sys.exit(
            f"error: {REDIS_URL} is not empty; the benchmark flushes it between rows: "
            "set HPO_BENCH_REDIS_URL to an unused Redis database"
        )


def open_optuna(url: str) -> Any:
    import optuna

    if url.startswith("redis"):
        from optuna.storages.journal import JournalRedisBackend

        return optuna.storages.JournalStorage(JournalRedisBackend(url))
    return optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://", 1))


@contextlib.contextmanager
def mlflow_db() -> Iterator[str]:
    """An MLflow store on the same PostgreSQL server, its tables created beforehand."""
    import psycopg
    from mlflow.tracking import MlflowClient

    name = f"hpo_bench_mlflow_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{PG_URL.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://")
    try:
        MlflowClient(url).search_experiments()
        yield url
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- the two kinds of worker ------------------------------------------------------


def hpo_commands(
    storage: str, url: str, tmp: Path, n_trials: int, grid: bool, tracking_uri: str | None
) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HPO_STUDIES_DIR": str(tmp),
        "HPO_STORAGE_URL" if storage == "postgres" else "HPO_REDIS_URL": url,
    }
    command = [
        sys.executable,
        "-m",
        "hpo",
        f"study={STUDY_NAME}",
        f"storage={storage}",
        "pruner=none",
        "sampler=grid" if grid else "sampler=tpe",
        f"study.n_trials={n_trials}",
        "progress=false",
        "n_jobs=1",
        f"hydra.run.dir={tmp}/outputs",
    ]
    if tracking_uri:
        command.append(f"tracking.uri={tracking_uri}")
    else:
        command.append("tracking.enabled=false")
    return command, env


def peer_commands(url: str, n_trials: int, sleep: float, grid: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.distributed",
        "peer-worker",
        url,
        str(n_trials),
        str(sleep),
        str(grid),
    ]


def peer_worker(url: str, n_trials: int, sleep: float, grid: int) -> None:
    """One plain Optuna worker, as the Optuna docs show it for several processes."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if grid:
        sampler: Any = optuna.samplers.GridSampler({"x": list(range(grid))})
    else:
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=10, multivariate=True, constant_liar=True
        )
    study = optuna.load_study(study_name=STUDY_NAME, storage=open_optuna(url), sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        if grid:
            x = float(trial.suggest_int("x", 0, grid - 1))
        else:
            x = trial.suggest_float("x", 0.0, 1.0)
            trial.suggest_categorical("c", ["a", "b", "c"])
        time.sleep(sleep)
        return x

    done = MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    study.optimize(objective, callbacks=[done])


# --- one row ----------------------------------------------------------------------


def run_row(
    storage: str,
    who: str,
    k: int,
    n_trials: int,
    sleep: float,
    grid: int = 0,
    tracking: bool = False,
) -> Row:
    import optuna
    from optuna.trial import TrialState

    with (
        tempfile.TemporaryDirectory(prefix="hpo-dist-") as tmp_dir,
        fresh_db(storage) as url,
        mlflow_db() if tracking else contextlib.nullcontext() as mlflow_uri,
    ):
        tmp = Path(tmp_dir)
        space = GRID_SPACE.replace("GRIDMAX", str(grid - 1)) if grid else TPE_SPACE
        (tmp / f"{STUDY_NAME}.yaml").write_text(
            STUDY.replace("SLEEP", str(sleep)).replace("SPACE", space)
        )
        if who in ("hpo", "fan"):
            command, env = hpo_commands(storage, url, tmp, n_trials, bool(grid), mlflow_uri)
            if who == "fan":  # one command forks the K workers
                command = [*command, f"workers={k}"]
        else:
            optuna.create_study(
                study_name=STUDY_NAME, storage=open_optuna(url), direction="maximize"
            )
            command, env = (
                peer_commands(url, n_trials, sleep, grid),
                {
                    **os.environ,
                    "PYTHONPATH": str(REPO),
                },
            )
        k_processes = k if who != "fan" else 1
        cpu_before = children_cpu()
        start = time.perf_counter()
        workers = [
            subprocess.Popen(
                command,
                cwd=tmp,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(k_processes)
        ]
        for worker in workers:
            _, stderr = worker.communicate(timeout=1800)
            if worker.returncode != 0:
                print(
                    f"  {who} worker exited {worker.returncode}: {stderr[-600:]}", file=sys.stderr
                )
        wall = time.perf_counter() - start
        cpu = children_cpu() - cpu_before
        study = optuna.load_study(study_name=STUDY_NAME, storage=open_optuna(url))
        trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    seen = Counter(tuple(sorted(t.params.items())) for t in finished)
    dup = sum(n - 1 for n in seen.values())
    starts = [t.datetime_start for t in finished if t.datetime_start]
    ends = [t.datetime_complete for t in finished if t.datetime_complete]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    failed = sum(t.state == TrialState.FAIL for t in trials)
    load_now = os.getloadavg()[0]
    return Row(
        storage, who, k, tracking, len(finished), dup, span, wall, sleep, load_now, cpu, failed
    )


def children_cpu() -> float:
    """CPU seconds used so far by this process's waited-for children (the workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- tables -----------------------------------------------------------------------


def efficiency_table(rows: Sequence[Row], n_trials: int) -> str:
    headers = [
        "storage",
        "workers",
        "K",
        "tracking",
        "trials/s",
        "efficiency",
        "span s",
        "wall s",
        "wall/s",
        "finished",
        "dup",
        "cpu s",
        "cpu ms/trial",
        "load",
    ]
    body = [
        [
            r.storage,
            r.who,
            str(r.k),
            "on" if r.tracking else "off",
            f"{r.rate:.2f}",
            f"{r.efficiency:.2f}",
            f"{r.span:.1f}",
            f"{r.wall:.1f}",
            f"{r.wall_rate:.2f}",
            f"{r.finished}/{n_trials}",
            str(r.dup),
            f"{r.cpu:.0f}",
            f"{r.cpu_per_trial:.0f}",
            f"{r.load:.1f}",
        ]
        for r in rows
    ]
    return table(headers, body, right=set(range(2, 14)) - {3})


def grid_table(rows: Sequence[Row], points: int) -> str:
    headers = ["storage", "workers", "K", "evaluated", "dup points", "span s", "wall s", "load"]
    body = [
        [
            r.storage,
            r.who,
            str(r.k),
            f"{r.finished}/{points}",
            str(r.dup),
            f"{r.span:.1f}",
            f"{r.wall:.1f}",
            f"{r.load:.1f}",
        ]
        for r in rows
    ]
    return table(headers, body, right={2, 3, 4, 5, 6, 7})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storages", default="postgres,redis")
    parser.add_argument("--ks", default="1,2,4,8")
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--tracking", default="off", help="off, on or off,on (hpo rows only)")
    parser.add_argument(
        "--who", default="peer,hpo,fan", help="peer, hpo (K commands), fan (workers=K)"
    )
    parser.add_argument("--grid-points", type=int, default=40)
    parser.add_argument("--grid-workers", type=int, default=4)
    parser.add_argument("--grid-only", action="store_true")
    parser.add_argument("--no-grid", action="store_true")
    args = parser.parse_args(argv)
    quiet()
    storages = args.storages.split(",")
    if "redis" in storages:
        check_redis_is_ours()
    print(f"hpo {revision()}; {os.cpu_count()} CPUs; load before: {load()}")
    print(f"PostgreSQL {PG_URL.rsplit('@', 1)[-1]}, Redis {REDIS_URL.rsplit('@', 1)[-1]}\n")

    if not args.grid_only:
        rows: list[Row] = []
        for k in (int(k) for k in args.ks.split(",")):
            for storage in storages:
                who = args.who.split(",")
                variants = [("peer", False)] if "peer" in who else []
                variants += [
                    (kind, t == "on")
                    for kind in ("hpo", "fan")
                    if kind in who
                    for t in args.tracking.split(",")
                ]
                if k % 2:  # alternate who goes first
                    variants.reverse()
                for who, tracking in variants:
                    row = run_row(storage, who, k, args.trials, args.sleep, tracking=tracking)
                    rows.append(row)
                    print(
                        f"  {storage} {who} K={k} tracking={'on' if tracking else 'off'}: "
                        f"{row.rate:.2f} trials/s, efficiency {row.efficiency:.2f}, "
                        f"{row.finished} finished, load {row.load:.1f}",
                        file=sys.stderr,
                    )
        rows.sort(key=lambda r: (r.storage, r.k, r.who, r.tracking))
        print(f"{args.trials} trials of {args.sleep} s sleep; efficiency = trials/s / (K / sleep)")
        print(efficiency_table(rows, args.trials))
        print(f"load after: {load()}\n")

    if not args.no_grid:
        grid_rows = [
            run_row(storage, who, args.grid_workers, args.grid_points, args.sleep, args.grid_points)
            for storage in storages
            for who in ("peer", "hpo")
        ]
        print(
            f"{args.grid_points}-point grid, {args.grid_workers} workers, {args.sleep} s per trial"
        )
        print(grid_table(grid_rows, args.grid_points))
        print(f"load after: {load()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "peer-worker":
        url, n, sleep, grid = sys.argv[2:6]
        peer_worker(url, int(n), float(sleep), int(grid))
    else:
        main()
