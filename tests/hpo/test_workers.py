"""``workers=N``: one command, N local worker processes, one study (hpo/workers.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.hpo.helpers import write_prior_study

REPO = Path(__file__).parents[2]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpo", "study=tiny_fan", "pruner=none", *args]


ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def hpo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    write_prior_study(tmp_path, "tiny_fan", sleep=2.0, n_trials=6)
    return subprocess.run(
        command(*args), cwd=tmp_path, env=ENV, text=True, capture_output=True, timeout=300
    )


def journal(tmp_path: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    return optuna.load_study(study_name="tiny_fan", storage=storage)


@pytest.mark.slow
def test_workers_n_runs_one_study_in_n_processes_and_reports_once(tmp_path: Path) -> None:
    done = hpo(tmp_path, "workers=3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("study tiny_fan:") == 1, "one summary, from the parent"
    assert "6 complete" in done.stdout

    trials = journal(tmp_path).trials
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
    logs = sorted((tmp_path / "outputs" / "tiny_fan").glob("*/worker-*/hpo.log"))
    assert len(logs) == 3, "each worker keeps its own log beside the parent's"
    logged = [line for log in logs for line in log.read_text().splitlines() if " COMPLETE " in line]
    assert len(logged) == 6, "every trial's line is in the log of the worker that ran it"
    assert " COMPLETE " not in done.stderr, "the console shows the parent's bar, not 3 logs"


@pytest.mark.slow
def test_sigterm_to_the_parent_ends_every_workers_trial_and_run_and_exits(
    tmp_path: Path,
) -> None:
    write_prior_study(tmp_path, "tiny_fan", sleep=30.0, n_trials=6)
    parent = subprocess.Popen(
        command("workers=3"), cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, text=True
    )
    try:
        running: list = []
        while len(running) < 3:  # all three workers are inside a trial
            assert parent.poll() is None, parent.stderr.read() if parent.stderr else ""
            time.sleep(0.5)
            if (tmp_path / "optuna.journal").exists():
                with contextlib.suppress(KeyError):  # the study is not created yet
                    running = journal(tmp_path).get_trials(states=(TrialState.RUNNING,))
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=120) == 143
    finally:
        parent.kill()

    trials = journal(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    for pid in (int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no worker outlives the command
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny_fan")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in runs) == ["KILLED"] * 4, "3 trials' runs and the parent"


def test_several_workers_on_sqlite_are_refused_with_one_line(tmp_path: Path) -> None:
    done = hpo(tmp_path, "workers=2", f"storage.url=sqlite:///{tmp_path}/optuna.db")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "storage=postgres" in lines[0], done.stderr
    assert not (tmp_path / "optuna.db").exists(), "refused before anything was created"
