"""Rows where MLflow's disk fills up: under its SQLite store, under its artifacts.

The journal (Optuna's storage, the source of truth) stays on a disk with room;
only MLflow's side is on a small tmpfs (rows/files.py's ``tmpfs``, root only).

  full-disk-mlflow-store  mlflow.db's disk fills mid-study: the store is away, as a
                          server gone would be. Trials go on to the budget (Optuna is
                          the source of truth); what their runs should receive waits
                          in the spool (the working directory, elsewhere), said in one
                          warning line, with no traceback of MLflow's. Once space is
                          freed, ``python -m hpo.check repair=true`` delivers it: every
                          run then has its full record.
  full-disk-artifacts     the artifacts' disk is full when the study ends: the plots
                          and model cannot be written. The summary, one ``error:``
                          line, status 1; every trial's run intact (they are in
                          mlflow.db), the parent run not left RUNNING. Once space is
                          freed, the same command logs the plots and model.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mlflow.tracking import MlflowClient

from benchmarks.common import REPO
from benchmarks.faults.invariants import first_line, load
from benchmarks.faults.rows.base import Staged, before, evidence, mlflow_file, row
from benchmarks.faults.rows.files import tmpfs
from benchmarks.faults.scene import EXIT_TIMEOUT, Ended, NotReached, Scene, scene
from hpo.names import MODEL_TRIAL_TAG, PARENT_ATTR, REPORT_ARTIFACT
from hpo.tracking.spool import Spool, spool_folder

LEFT = 24 * 1024  # bytes left free on the full disk, as rows/files.py's full-disk leaves
AWAY = "is unreachable"  # the warning line said once when tracking goes away (spool.Away)


@row("full-disk-mlflow-store")
def full_disk_mlflow_store(root: Path, budget: int = 8) -> Staged:
    """mlflow.db on a 4 MiB tmpfs, filled to 24 KiB free once two trials have finished;
    freed after the study, then ``python -m hpo.check repair=true``."""
    with tmpfs(root / "disk", "4m") as disk:
        where = f"tracking.artifact_location={root / 'mlartifacts'}"  # off the full disk
        with disk_scene(root, budget, f"sqlite:///{disk / 'mlflow.db'}", where) as s:
            (worker,) = s.start(1, user_fault=True)  # a full disk is the user's to free
            s.wait_finished(2)
            filler = fill(disk)  # first, while trials remain: reading the stores takes a while
            kept = before(s)
            ended = worker.wait()
            spool = Spool(spool_folder(root, s.name))
            waiting = len(spool)
            if not waiting:
                raise NotReached("the full disk refused no MLflow write")
            filler.unlink()
            repaired = repair(s)
            found = evidence(s, before=kept)
            found.ended.append(repaired)
            found.more["f"] = said_once(ended, AWAY)
            found.more["c"] = delivered(repaired, waiting, spool)
            parent = parent_status(s)
            yield f"mlflow.db full: {waiting} writes spooled, repaired (parent {parent})", found


@row("full-disk-artifacts")
def full_disk_artifacts(root: Path, budget: int = 6) -> Staged:
    """tracking.artifact_location on a 64 MiB tmpfs with 24 KiB free: no room for a plot."""
    with tmpfs(root / "artifacts", "64m") as disk:
        where = f"tracking.artifact_location={disk}"
        with disk_scene(root, budget, mlflow_file(root), where) as s:
            filler = fill(disk)
            (full,) = s.wait_all(s.start(1, label="full", expected=(1,), user_fault=True))
            kept = before(s)
            parent = parent_status(s)
            filler.unlink()
            s.start(1, label="freed")
            found = evidence(s, before=kept)
            found.more["f"] = said_disk(full)
            closed = [] if parent in ("FAILED", "KILLED") else [f"the parent run was {parent}"]
            found.more["g"] = summary_printed(full, s.name) + closed + finished_end(s)
            yield f"artifacts' disk full at the study's end (parent run {parent}), freed", found


@contextlib.contextmanager
def disk_scene(root: Path, budget: int, tracking_uri: str, *settings: str) -> Iterator[Scene]:
    """A journal on the row's own disk, MLflow at ``tracking_uri``; the spool in ``root``."""
    journal = f"journal:{root / 'optuna.journal'}"
    with scene(
        root,
        group="local",
        storage_url=journal,
        tracking_uri=tracking_uri,
        budget=budget,
        sleep=0.3,
        settings=settings,
    ) as s:
        s.write_study()
        yield s


def fill(disk: Path) -> Path:
    """A file taking all but LEFT bytes of ``disk``: the disk is then full."""
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(shutil.disk_usage(disk).free - LEFT, 0))
    return filler


# --- what the full run must have said and left -------------------------------------


def repair(s: Scene) -> Ended:
    """``python -m hpo.check repair=true`` on the row's study, from its working directory
    (where the spool is), as the warning line tells the user to."""
    command = [sys.executable, "-m", "hpo.check", *s.command()[3:], "repair=true"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        command, cwd=s.root, env=env, capture_output=True, text=True, timeout=EXIT_TIMEOUT
    )
    return Ended("repair", done.returncode, done.stdout, done.stderr, (0,), False)


def delivered(repaired: Ended, waiting: int, spool: Spool) -> list[str]:
    """The repair delivered every write that waited, and none waits any more."""
    if f"delivered {waiting} waiting MLflow writes" in repaired.stdout and not len(spool):
        return []
    return [f"{waiting} writes were spooled; the repair left {len(spool)}"]


def said_once(ended: Ended, text: str) -> list[str]:
    count = ended.stderr.count(text)
    return [] if count == 1 else [f"{ended.label} said '{text}' {count} times, not once"]


def said_disk(ended: Ended) -> list[str]:
    """The error line names the full disk and the fix."""
    last = ended.stderr.strip().splitlines()[-1] if ended.stderr.strip() else ""
    if "the disk is full" in last and "free some space" in last:
        return []
    return [f"{ended.label}'s last line does not name the full disk: {last[:160]!r}"]


def summary_printed(ended: Ended, study: str) -> list[str]:
    return [] if f"study {study}: " in ended.stdout else [f"{ended.label} printed no summary"]


def parent_status(s: Scene) -> str:
    """The MLflow status of the study's parent run ("gone" when it cannot be read)."""
    try:
        run_id = load(s.storage_url, s.name).user_attrs[PARENT_ATTR]
        return str(MlflowClient(s.tracking_uri).get_run(run_id).info.status)
    except Exception as err:
        return f"gone ({first_line(err)})"


def finished_end(s: Scene) -> list[str]:
    """Once space is freed, the study's end is on its parent run: FINISHED, plots, model."""
    run_id = load(s.storage_url, s.name).user_attrs.get(PARENT_ATTR)
    client = MlflowClient(s.tracking_uri)
    run = client.get_run(str(run_id))
    problems = [] if run.info.status == "FINISHED" else [f"parent run {run.info.status}"]
    if MODEL_TRIAL_TAG not in run.data.tags:
        problems.append("no best model on the parent run")
    files = [a.path for a in client.list_artifacts(run.info.run_id)]
    if REPORT_ARTIFACT not in files:
        problems.append(f"no {REPORT_ARTIFACT} (the plots) on the parent run")
    return problems
