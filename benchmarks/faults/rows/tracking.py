"""Rows where the MLflow tracking server goes away for a while."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.faults.rows.base import (
    SHORT_MLFLOW_RETRIES,
    Staged,
    before,
    evidence,
    row,
)
from benchmarks.faults.scene import scene
from benchmarks.faults.server import tracking_server

AWAY = "MLflow is still away"  # the study's last warning when its writes wait in the spool


def _tracking_down(root: Path, down: float, budget: int, env: dict[str, str]) -> Staged:
    """One worker logging through a tracking server that goes away for ``down`` seconds."""
    url = f"journal:{root / 'optuna.journal'}"
    with (
        tracking_server() as server,
        scene(
            root, group="local", storage_url=url, tracking_uri=server.uri, budget=budget, env=env
        ) as s,
    ):
        s.sleep = 0.5
        s.write_study()
        s.start(1, "tracking=server")
        s.wait_finished(2)
        kept = before(s)
        server.stop()
        time.sleep(down)  # the outage itself: its length is the fault
        server.start()
        retries = "MLflow's own retries" if not env else "past MLflow's retries (cut to ~3 s)"
        said = f"mlflow server stopped for {down:g} s, {retries}"
        (first,) = s.wait_all()
        if AWAY in first.stderr:  # it ended while tracking was away: do as its last line says
            s.start(1, "tracking=server", label="rerun")
            said += "; ended while away, then the same command rerun"
        found = evidence(s, before=kept)
        yield said, found


@row("tracking-down")
def tracking_down(root: Path, down: float = 30.0, budget: int = 12) -> Staged:
    yield from _tracking_down(root, down, budget, env={})


@row("tracking-down-long")
def tracking_down_long(root: Path, down: float = 30.0, budget: int = 12) -> Staged:
    """Stands in for the issue's 10-minute outage: MLflow gives up within the 30 s."""
    yield from _tracking_down(root, down, budget, env=SHORT_MLFLOW_RETRIES)
