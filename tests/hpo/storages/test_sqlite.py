"""SQLite: one worker process, file locks beside the database, no lock for :memory:."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storages import init_lock, serves_one_worker, worker_lock
from hpo.storages.registry import backend_for
from tests.hpo.storages.helpers import Store, start_workers

# Two folds of 0.2 s: long enough that processes started together overlap.
STUDY = """
name: tiny_sqlite_start
objective: {_target_: tests.hpo.helpers.PriorObjective, sleep: 0.2}
data: breast_cancer
cv: {scheme: kfold, n_splits: 2}
metric: roc_auc
n_trials: 4
space:
  x: {type: float, low: 0.0, high: 1.0}
"""


def test_sqlite_serves_one_worker() -> None:
    assert serves_one_worker("sqlite:///optuna.db")
    assert backend_for("sqlite:///optuna.db").name == "SQLite"


def test_the_schema_lock_is_a_file_beside_the_database(tmp_path: Path) -> None:
    with init_lock(f"sqlite:///{tmp_path / 'sub' / 'mlflow.db'}", "mlflow-schema"):
        assert (tmp_path / "sub" / "mlflow.db.mlflow-schema.lock").exists()
    with init_lock("sqlite:///:memory:", "mlflow-schema"):
        pass


def test_an_in_memory_database_has_no_night_lock() -> None:
    refused = pytest.raises(UserError, match="schedule=nightly cannot lock storage sqlite://")
    with refused, backend_for("sqlite:///:memory:").night_lock("s", "2024-06-01"):
        pass


def test_a_second_process_on_a_studys_sqlite_file_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    cfg = StorageConfig(url=f"sqlite:///{tmp_path / 'optuna.db'}")
    with worker_lock(cfg, "s"):
        refused = pytest.raises(UserError, match=r"process \d+ on .* is already running study 's'")
        with refused, worker_lock(cfg, "s"):
            pass
        with worker_lock(cfg, "another study"):  # one process per study, not per file
            pass
    with worker_lock(cfg, "s"):  # freed with its holder
        pass


@pytest.mark.slow
def test_sqlite_processes_started_at_the_same_moment_never_run_the_study_together(
    tmp_path: Path,
) -> None:
    """Each either ran alone or was refused with one line; the budget holds (issue 11, 7)."""
    store = Store("sqlite", f"sqlite:///{tmp_path / 'optuna.db'}", "tiny_sqlite_start")
    workers = start_workers(tmp_path, store, STUDY, 3)
    ran = 0
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode in (0, 2), stderr
        assert "Traceback" not in stderr
        if worker.returncode == 2:
            (line,) = stderr.strip().splitlines()
            assert "already running study 'tiny_sqlite_start' on SQLite" in line
        ran += worker.returncode == 0
    assert ran >= 1
    trials = store.load().trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    spans = sorted((t.datetime_start, t.datetime_complete, t.user_attrs["worker"]) for t in trials)
    for (_, end, worker), (start, _, other) in itertools.pairwise(spans):
        assert worker == other or end <= start, "two processes ran trials at once"
