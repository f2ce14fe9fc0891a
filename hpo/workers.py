"""``workers=N``: N local worker processes on one study, started and watched from one command.

The parent resolves the config, creates the study and its MLflow parent run
once, then starts N copies of the same command (``workers=1 trials_only=true``)
and shows the study's progress from the storage. Each child is an ordinary
worker, exactly like one started by hand on another machine: the exact
budget, heartbeats and retries come from the storage, not from this module.
When the children are done, the parent writes the summary, the plots and the
best model once. SIGTERM or Ctrl-C reaches every child, which ends its trial
as FAIL and its MLflow run as KILLED.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from hydra.core.hydra_config import HydraConfig
from optuna.trial import TrialState
from tqdm import tqdm

from hpo import report
from hpo.config import Config
from hpo.errors import UserError
from hpo.runner import Plan, finish, make_plan, open_study
from hpo.secrets import mask
from hpo.storages import backend_name, open_storage, retrying, serves_one_worker
from hpo.tracking.tracker import Tracker

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
STOP_SECONDS = 60.0  # a child still running this long after SIGTERM is killed


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
    study = retrying(
        lambda: open_study(plan, storage, tracker), plan.outage_limit, "opening the study"
    )
    children = [_start(i) for i in range(workers)]
    log.info(
        "started %d workers on study %s: pids %s",
        workers,
        plan.spec.name,
        " ".join(str(c.pid) for c in children),
    )
    try:
        _watch(cfg, plan, study, children)
    except BaseException:
        _stop(children)
        if tracker:
            tracker.close_study("KILLED")
        raise
    failed = [c for c in children if c.returncode != 0]
    if len(failed) == len(children):
        codes = sorted({c.returncode for c in failed})
        raise RuntimeError(f"all {workers} workers failed (exit status {codes}): see their logs")
    for child in failed:
        log.warning("worker pid %d ended with status %d", child.pid, child.returncode)
    return retrying(lambda: finish(cfg, plan, study, tracker), plan.outage_limit, "finishing")


def _start(index: int) -> subprocess.Popen[bytes]:
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


def _watch(
    cfg: Config, plan: Plan, study: optuna.Study, children: list[subprocess.Popen[bytes]]
) -> None:
    """Show the study's progress (all workers) until every child has exited."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    with tqdm(
        total=plan.budget,
        unit="trial",
        desc=f"{plan.spec.name} x{len(children)}",
        disable=not (cfg.progress and sys.stderr.isatty()),
        dynamic_ncols=True,
    ) as bar:
        while any(c.poll() is None for c in children):
            time.sleep(POLL_SECONDS)
            with contextlib.suppress(Exception):  # progress only: the workers ride out outages
                bar.update(len(study.get_trials(deepcopy=False, states=finished)) - bar.n)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every child still running, then wait (and kill past STOP_SECONDS)."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
