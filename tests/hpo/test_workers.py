"""``workers=N``: one command, N local worker processes, one study (hpo/workers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from tests.hpo.helpers import write_prior_study

REPO = Path(__file__).parents[2]


def hpo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    write_prior_study(tmp_path, "tiny_fan", sleep=2.0, n_trials=6)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hpo", "study=tiny_fan", "pruner=none", *args],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.slow
def test_workers_n_runs_one_study_in_n_processes_and_reports_once(tmp_path: Path) -> None:
    done = hpo(tmp_path, "workers=3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("study tiny_fan:") == 1, "one summary, from the parent"
    assert "6 complete" in done.stdout

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    trials = optuna.load_study(study_name="tiny_fan", storage=storage).trials
    assert len(trials) == 6
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) >= 2, "the trials were shared by several processes"
    assert str(os.getpid()) not in {w.rsplit(":", 1)[1] for w in workers}

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny_fan")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "config.yaml" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(int(r.data.tags["hpo.trial"]) for r in children) == list(range(6))
    assert {r.info.status for r in children} == {"FINISHED"}
    outputs = list((tmp_path / "outputs" / "tiny_fan").glob("*/worker-*"))
    assert len(outputs) == 3, "each worker keeps its own Hydra output folder"


def test_several_workers_on_sqlite_are_refused_with_one_line(tmp_path: Path) -> None:
    done = hpo(tmp_path, "workers=2", f"storage.url=sqlite:///{tmp_path}/optuna.db")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "storage=postgres" in lines[0], done.stderr
    assert not (tmp_path / "optuna.db").exists(), "refused before anything was created"
