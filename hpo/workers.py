"""``workers=N``: N local worker processes on one study, started and watched from one command.

The parent resolves the config, makes the plan (data, splits) and creates
the study and its MLflow parent run once, then forks N workers that start
from there: the imports, the data and the plan are paid once, not N times
(benchmarks/distributed.py, ``--who fan``). Each worker opens its own
storage connections (the parent's pools are emptied before the fork) and
its own MLflow writer, and runs trials only (``trials_only``), exactly like
a worker started by hand on another machine: the exact budget, heartbeats
and retries come from the storage, not from this module. A storage that
cannot be forked into (the gRPC proxy) gets its workers as commands
(``python -m hpo ... workers=1 trials_only=true``) instead. When the
workers are done, the parent writes the summary, the plots and the best
model once. SIGTERM or Ctrl-C reaches every worker, which ends its trial
as FAIL and its MLflow run as KILLED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import multiprocessing as mp
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
from hydra.core.hydra_config import HydraConfig
from optuna.trial import TrialState
from tqdm import tqdm

from hpo import report
from hpo.cli import fail
from hpo.config import Config
from hpo.errors import StudyStopped, UserError
from hpo.runner import Plan, finish, make_plan, open_study, run
from hpo.secrets import mask
from hpo.storages import (
    DatabaseOutage,
    backend_name,
    open_storage,
    retrying,
    serves_one_worker,
    survives_fork,
)
from hpo.tracking.tracker import Tracker

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
STOP_SECONDS = 60.0  # a child still running this long after SIGTERM is killed


class Worker(Protocol):
    """What the parent needs of a worker process: ``multiprocessing.Process``'s own terms."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


def refuse_shared_sqlite(url: str, workers: int) -> None:
    """SQLite locks the whole file per write: several processes get 'database is locked'."""
    if workers > 1 and serves_one_worker(url):
        raise UserError(
            f"storage.url {mask(url)} is {backend_name(url)}, which cannot serve {workers} worker "
            "processes: use storage=postgres (many machines) or storage=local (one machine)"
        )


def fan_out(cfg: Config) -> report.Summary:
    """Run the study in ``cfg.workers`` child processes; report once they are done."""
    workers = int(cfg.workers)
    refuse_shared_sqlite(cfg.storage.url, workers)
    plan = make_plan(cfg)
    storage = open_storage(cfg.storage)
    tracker = (
        Tracker(cfg.tracking, plan.spec.name, plan.sampler_kind) if cfg.tracking.enabled else None
    )
    try:
        study = retrying(
            lambda: open_study(plan, storage, tracker), plan.outage_limit, "opening the study"
        )
        children = _start(cfg, plan, workers)
        _wait(cfg, plan, study, children, tracker)
        return retrying(lambda: finish(cfg, plan, study, tracker), plan.outage_limit, "finishing")
    finally:
        if tracker:  # its writer process must not outlive the study (exit would wait for it)
            with contextlib.suppress(Exception):
                tracker.flush()


def _start(cfg: Config, plan: Plan, workers: int) -> list[Worker]:
    """The workers, forked from this process where the storage allows it."""
    if survives_fork(cfg.storage):
        children = _fork(cfg, plan, workers)
    else:
        children = [Command(_command(i)) for i in range(workers)]
    log.info(
        "started %d workers on study %s: pids %s",
        workers,
        plan.spec.name,
        " ".join(str(c.pid) for c in children),
    )
    return children


def _wait(
    cfg: Config, plan: Plan, study: optuna.Study, children: list[Worker], tracker: Tracker | None
) -> None:
    """Until every worker has exited; interrupted, stop them and mark the parent run KILLED."""
    try:
        _watch(cfg, plan, study, children)
    except BaseException as err:
        _stop(children)
        if tracker:
            with contextlib.suppress(Exception):  # the store may be what failed
                tracker.flush(prompt=not isinstance(err, Exception))
                tracker.close_study("KILLED")
        raise
    failed = [c for c in children if c.exitcode != 0]
    if len(failed) == len(children):
        codes = sorted({c.exitcode or 0 for c in failed})
        raise RuntimeError(
            f"all {len(children)} workers failed (exit status {codes}): see their logs"
        )
    for child in failed:
        log.warning("worker pid %d ended with status %d", child.pid, child.exitcode)


# --- forked workers ---------------------------------------------------------------


def _fork(cfg: Config, plan: Plan, workers: int) -> list[Worker]:
    """``workers`` processes forked from this one, each running ``_work``."""
    _empty_pools()
    context = mp.get_context("fork")
    children: list[Worker] = []
    for index in range(workers):
        child = context.Process(
            target=_work, args=(cfg, plan, index), name=f"hpo-worker-{index}", daemon=False
        )
        child.start()
        children.append(child)
    return children


def _empty_pools() -> None:
    """Close every pooled connection of this process: SQLAlchemy's (Optuna's and MLflow's
    SQL stores) and requests' (an MLflow server).

    A connection used by two processes corrupts both: SQLAlchemy's advice for
    ``os.fork`` is that no pooled connection crosses it. Each process opens
    new ones on its next call. (Redis clients see the new pid and reconnect by
    themselves; journal files are opened per write.)
    """
    closers: list[tuple[type, Callable[[Any], None]]] = []
    if (engines := sys.modules.get("sqlalchemy.engine")) is not None:
        closers.append((engines.Engine, lambda engine: engine.dispose()))
    if (requests := sys.modules.get("requests")) is not None:
        closers.append((requests.Session, lambda session: session.close()))
    for thing in gc.get_objects():
        for kind, close in closers:
            if issubclass(type(thing), kind):
                close(thing)


def _work(cfg: Config, plan: Plan, index: int) -> None:
    """One forked worker: the parent's imports and plan; its own connections, writer and log."""
    _worker_logs(index)
    random.seed()  # each worker its own draws, as separate commands would have
    np.random.seed()
    if cfg.sampler.get("seed") is None:  # unseeded, it would propose what its siblings do
        plan.sampler.reseed_rng()
    worker = dataclasses.replace(cfg, trials_only=True, progress=False)
    try:
        run(worker, plan, writer_start="fork")  # no thread is running yet: fork is safe
    except KeyboardInterrupt:
        sys.exit(130)
    except (UserError, StudyStopped, DatabaseOutage) as err:  # as hpo/command.py ends them
        fail(f"worker {index}: {err}", status=2 if isinstance(err, UserError) else 1)


def _worker_logs(index: int) -> None:
    """Worker ``index`` logs to a file of its own in ``worker-INDEX/`` beside the parent's
    log; on the console it shows warnings only (the parent's bar shows the trials)."""
    folder = Path(HydraConfig.get().runtime.output_dir) / f"worker-{index}"
    folder.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            own = logging.FileHandler(folder / Path(handler.baseFilename).name, delay=True)
            own.setFormatter(handler.formatter)
            own.setLevel(handler.level)
            root.removeHandler(handler)  # not closed: its file is the parent's
            root.addHandler(own)
        elif isinstance(handler, logging.StreamHandler):
            handler.setLevel(max(handler.level, logging.WARNING))


# --- workers as commands ------------------------------------------------------------


class Command:
    """A worker started as its own ``python -m hpo`` command, in ``Worker``'s terms."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen

    @property
    def pid(self) -> int | None:
        return self.popen.pid

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)


def _command(index: int) -> subprocess.Popen[bytes]:
    """The same command as this one, as worker ``index``, in its own Hydra output folder."""
    hydra = HydraConfig.get()
    overrides = [o for o in hydra.overrides.task if not o.lstrip("+~").startswith("workers=")]
    folder = Path(hydra.runtime.output_dir) / f"worker-{index}"
    command = [
        sys.executable,
        "-m",
        "hpo",
        *overrides,
        "workers=1",
        "trials_only=true",
        "progress=false",
        f"hydra.run.dir={folder}",
        "hydra.job_logging.root.level=WARNING",  # per-trial lines come from the parent's bar
    ]
    return subprocess.Popen(command)


# --- watching and stopping ----------------------------------------------------------


def _watch(cfg: Config, plan: Plan, study: optuna.Study, children: list[Worker]) -> None:
    """Show the study's progress (all workers) until every child has exited."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    with tqdm(
        total=plan.budget,
        unit="trial",
        desc=f"{plan.spec.name} x{len(children)}",
        disable=not (cfg.progress and sys.stderr.isatty()),
        dynamic_ncols=True,
    ) as bar:
        while any(c.is_alive() for c in children):
            time.sleep(POLL_SECONDS)
            with contextlib.suppress(Exception):  # progress only: the workers ride out outages
                bar.update(len(study.get_trials(deepcopy=False, states=finished)) - bar.n)


def _stop(children: list[Worker]) -> None:
    """SIGTERM to every child still running, then wait (and kill past STOP_SECONDS)."""
    for child in children:
        if child.is_alive():
            child.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        child.join(timeout=max(0.1, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()
