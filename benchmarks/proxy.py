"""The gRPC proxy: database connections and per-trial latency, K workers direct and through it.

    python -m benchmarks.proxy                       # K=8, 120 trials of 0.2 s sleep
    python -m benchmarks.proxy --ks 1,8 --trials 160 --repeats 2 --proxies 1,2

Each row runs K processes of ``python -m hpo`` (tracking off, sampler tpe, the
0.2 s sleep objective of benchmarks/distributed.py) on a fresh PostgreSQL
database, either ``storage=postgres`` (direct: every worker its own pool) or
``storage=grpc`` through one ``python -m hpo.storages.proxy`` started before
the clock (the proxy's pool is the only one on the database; ``--proxies 1,2``
adds a row with two proxies, worker i on proxy i % 2). The exact budget
holds in both (``finished`` counts COMPLETE + PRUNED; ``dup`` repeats).

  conn peak    the most client connections pg_stat_activity showed on the study's database
  conn med     their median from the first trial's start to the last one's end (sampled
               every 20 ms)
  cycle ms     per worker, start of a trial to the start of its next one (the claim
               under the study lock, the trial, the tell): median and 95th percentile
  over ms      median cycle minus the objective's sleep: what the platform adds per trial
  trial ms     a trial's own span (start to complete: sampling, the sleep, the tell)
  trials/s     finished trials over the first start .. last end
  cpu s        CPU seconds of the K workers, and of the proxies (through them only)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, load, quiet, revision, table
from benchmarks.distributed import PG_URL, STUDY, STUDY_NAME, TPE_SPACE, children_cpu, open_optuna

SAMPLE_SECONDS = 0.02


@dataclass
class Row:
    path: str  # direct | proxy | proxy xN
    k: int
    finished: int
    dup: int
    failed: int
    span: float
    peak: int
    median_conn: float
    cycle: float  # median ms
    cycle95: float
    trial: float  # median ms
    sleep: float
    cpu: float
    proxy_cpu: float
    load: float

    @property
    def rate(self) -> float:
        return self.finished / self.span if self.span else 0.0


@contextlib.contextmanager
def proxy(url: str) -> Iterator[tuple[str, int]]:
    """``python -m hpo.storages.proxy`` in front of ``url``: its grpc:// URL and pid."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HPO_STORAGE_URL": url}
    command = [sys.executable, "-m", "hpo.storages.proxy", "port=0"]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=log)
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"grpc://\S+:(\d+)", line)
        try:
            if not found:
                log.seek(0)
                raise RuntimeError(f"the proxy did not start: {line}{log.read()[-800:]}")
            yield f"grpc://127.0.0.1:{found[1]}", server.pid
        finally:
            server.terminate()
            server.wait(60)


@contextlib.contextmanager
def fresh_db() -> Iterator[str]:
    """A new database with Optuna's tables, and no connection of this process left open on it."""
    import psycopg

    name = f"hpo_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    try:
        open_optuna(url).engine.dispose()  # creates the tables before the clock starts
        yield url
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def process_cpu(pid: int) -> float:
    """CPU seconds of a running process, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connections:
    """pg_stat_activity's count for one database, sampled in a thread while the workers run."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.samples: list[tuple[float, int]] = []  # (time.time(), connections)
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Connections:
        self._running.set()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.clear()
        self._thread.join(30)

    def _watch(self) -> None:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as admin:  # another database: not counted
            while self._running.is_set():
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND backend_type = 'client backend'",
                    (self.database,),
                ).fetchone()
                self.samples.append((time.time(), int(row[0]) if row else 0))
                time.sleep(SAMPLE_SECONDS)


def command(storage_url: str, tmp: Path, n_trials: int) -> tuple[list[str], dict[str, str]]:
    through = storage_url.startswith("grpc://")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HPO_STUDIES_DIR": str(tmp)}
    return [
        sys.executable,
        "-m",
        "hpo",
        f"study={STUDY_NAME}",
        "storage=grpc" if through else "storage=postgres",
        f"storage.url={storage_url}",
        "pruner=none",
        "sampler=tpe",
        f"study.n_trials={n_trials}",
        "progress=false",
        "n_jobs=1",
        "tracking.enabled=false",
        f"hydra.run.dir={tmp}/outputs",
    ], env


def run_row(path: str, k: int, n_trials: int, sleep: float, proxies: int) -> Row:
    """One row: through ``proxies`` proxies (worker i on proxy i % proxies), or 0: direct."""
    import optuna
    from optuna.trial import TrialState

    with (
        tempfile.TemporaryDirectory(prefix="hpo-proxy-") as tmp_dir,
        fresh_db() as url,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_dir)
        (tmp / f"{STUDY_NAME}.yaml").write_text(
            STUDY.replace("SLEEP", str(sleep)).replace("SPACE", TPE_SPACE)
        )
        database = url.rsplit("/", 1)[1]
        served = [stack.enter_context(proxy(url)) for _ in range(proxies)]
        targets = [target for target, _ in served] or [url]
        pids = [pid for _, pid in served]
        cpu_before, proxy_before = children_cpu(), sum(map(process_cpu, pids))
        with Connections(database) as connections:
            workers = []
            for i in range(k):
                argv, env = command(targets[i % len(targets)], tmp, n_trials)
                workers.append(
                    subprocess.Popen(
                        argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                    )
                )
            for worker in workers:
                _, stderr = worker.communicate(timeout=1800)
                if worker.returncode:
                    said = stderr.decode(errors="replace")[-600:]
                    print(f"  {path} worker exit {worker.returncode}: {said}", file=sys.stderr)
        cpu = children_cpu() - cpu_before
        proxy_cpu = sum(map(process_cpu, pids)) - proxy_before
        stack.close()  # the proxies stop before the database is dropped
        storage = open_optuna(url)
        trials = optuna.load_study(study_name=STUDY_NAME, storage=storage).get_trials()
        storage.engine.dispose()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    seen = Counter(tuple(sorted(t.params.items())) for t in finished)
    starts = [t.datetime_start for t in finished if t.datetime_start]
    ends = [t.datetime_complete for t in finished if t.datetime_complete]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    cycles, spans = latencies(finished)
    first, last = (min(starts).timestamp(), max(ends).timestamp()) if span else (0.0, 0.0)
    running = [n for at, n in connections.samples if first <= at <= last] or [0]
    return Row(
        path=path,
        k=k,
        finished=len(finished),
        dup=sum(n - 1 for n in seen.values()),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        span=span,
        peak=max([n for _, n in connections.samples] or [0]),
        median_conn=statistics.median(running),
        cycle=statistics.median(cycles) if cycles else 0.0,
        cycle95=percentile(cycles, 0.95),
        trial=statistics.median(spans) if spans else 0.0,
        sleep=sleep,
        cpu=cpu,
        proxy_cpu=proxy_cpu,
        load=os.getloadavg()[0],
    )


def latencies(trials: Sequence[object]) -> tuple[list[float], list[float]]:
    """Per worker, ms from each trial's start to its next trial's start; each trial's own ms."""
    by_worker: dict[str, list[object]] = defaultdict(list)
    spans: list[float] = []
    for t in trials:
        start, end = getattr(t, "datetime_start", None), getattr(t, "datetime_complete", None)
        if start and end:
            spans.append((end - start).total_seconds() * 1000)
        by_worker[str(getattr(t, "user_attrs", {}).get("worker"))].append(t)
    cycles: list[float] = []
    for own in by_worker.values():
        begun = sorted(s for t in own if (s := getattr(t, "datetime_start", None)))
        cycles += [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(begun)]
    return cycles, spans


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def proxy_table(rows: Sequence[Row], n_trials: int) -> str:
    headers = [
        "path",
        "K",
        "conn peak",
        "conn med",
        "cycle ms",
        "p95 ms",
        "over ms",
        "trial ms",
        "trials/s",
        "finished",
        "dup",
        "cpu s",
        "proxy cpu s",
        "load",
    ]
    body = [
        [
            r.path,
            str(r.k),
            str(r.peak),
            f"{r.median_conn:.0f}",
            f"{r.cycle:.0f}",
            f"{r.cycle95:.0f}",
            f"{r.cycle - r.sleep * 1000:.0f}",
            f"{r.trial:.0f}",
            f"{r.rate:.2f}",
            f"{r.finished}/{n_trials}",
            str(r.dup),
            f"{r.cpu:.0f}",
            f"{r.proxy_cpu:.0f}" if r.path != "direct" else "-",
            f"{r.load:.1f}",
        ]
        for r in rows
    ]
    return table(headers, body, right=set(range(1, 14)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", default="8")
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--proxies", default="1", help="proxy rows: 1 or 1,2 (workers spread)")
    args = parser.parse_args(argv)
    quiet()
    print(f"hpo {revision()}; {os.cpu_count()} CPUs; load before: {load()}")
    print(f"PostgreSQL {PG_URL.rsplit('@', 1)[-1]}\n")
    rows: list[Row] = []
    variants = [("direct", 0)] + [
        ("proxy" if n == 1 else f"proxy x{n}", n) for n in map(int, args.proxies.split(","))
    ]
    for repeat in range(args.repeats):
        for k in (int(k) for k in args.ks.split(",")):
            order = variants if (repeat + k) % 2 == 0 else variants[::-1]
            for path, n in order:
                row = run_row(path, k, args.trials, args.sleep, n)
                rows.append(row)
                print(
                    f"  {path} K={k}: peak {row.peak} connections, cycle {row.cycle:.0f} ms, "
                    f"{row.finished} finished, load {row.load:.1f}",
                    file=sys.stderr,
                )
    rows.sort(key=lambda r: (r.k, r.path))
    print(f"{args.trials} trials of {args.sleep} s sleep, tracking off, sampler tpe")
    print(proxy_table(rows, args.trials))
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
