"""The command line as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hpo.helpers import hpo, write_prior_study

FAST = [
    "study.objective.max_rounds=15",
    "study.objective.early_stopping_rounds=5",
    "progress=false",
]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["study=nope"], "unknown study 'nope': choose study= one of"),
        (["sampler=foo"], "unknown sampler 'foo'"),
        (["study.n_trails=3"], "unknown key 'study.n_trails': did you mean study.n_trials="),
        (["+study.n_trail=2"], "unknown key 'study.n_trail': did you mean study.n_trials="),
        (["+metric=f1"], "unknown key 'metric': did you mean study.metric="),
        (["finish=false"], "finish=false is now trials_only=true"),
        (["seed=abc"], "seed=abc"),
        (["study.metric=f2"], "unknown metric 'f2'"),
        (
            ["sampler=grid", "study.space.learning_rate.grid=null"],
            "parameter 'learning_rate' is a continuous range",
        ),
        (["study.space.max_depth.high=1"], "study.space.max_depth is not a valid int range"),
        (["study.n_trials=0"], "study.n_trials is 0"),
        (["storage.url=postgresql://u:canarypw@127.0.0.1:1/x"], "cannot open storage"),
        (["study.data=nowhere"], "unknown data set 'nowhere'"),
        (["cv=kfold", "cv.n_splits=1"], "cv=kfold cannot be set up: k-fold cross-validation"),
        (["study=xgb_rmse", "evaluation.cost.fn=5"], "evaluation.cost chooses a binary task"),
        (["evaluation.cost.fn=-1"], "evaluation.cost {fp: 1, fn: -1} cannot rank thresholds"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    done = hpo(*args, *FAST, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in done.stderr and "canarypw" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["study=mlp_digits", "study.objective.init=foo"],
            "study.objective.init='foo' is not one of auto, he, xavier",
        ),
        (
            ["study=mlp_digits", "study.space.activation.choices=[relu,foo]"],
            "study.space.activation offers activation='foo'",
        ),
        (["study.objective.max_rounds=0"], "study.objective.max_rounds=0 is not a whole number"),
        (["sampler.n_startup_trials=abc"], "sampler.n_startup_trials='abc' is not a whole number"),
        (
            ["sampler=cmaes", "sampler.restart_strategy=ipop"],
            "Optuna >= 4.4 dropped CMA-ES restarts",
        ),
    ],
)
def test_bad_settings_exit_2_before_the_first_trial(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    done = hpo(*args, "tracking.enabled=false", "progress=false", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "optuna.journal").exists()  # refused before the study was opened


def test_help_lists_studies_and_groups(tmp_path: Path) -> None:
    done = hpo("--help", cwd=tmp_path)
    assert done.returncode == 0
    studies = next(line for line in done.stdout.splitlines() if line.startswith("study: "))
    assert {"xgb_f1", "xgb_imbalanced_ap", "xgb_rmse"} <= set(studies[7:].split(", "))
    assert "sampler: cmaes, gp, grid, nsga2, random, tpe" in done.stdout


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    done = hpo(
        "study=xgb_rmse",
        "sampler=cmaes",
        "study.space.max_depth.high=6",
        "--cfg",
        "job",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "name: xgb_rmse" in done.stdout
    assert "_target_: optuna.samplers.CmaEsSampler" in done.stdout
    assert "high: 6" in done.stdout


@pytest.mark.slow
def test_default_run_uses_local_stores_and_resumes(tmp_path: Path) -> None:
    done = hpo("study=xgb_f1", "study.n_trials=2", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "study xgb_f1: 2 complete, 0 pruned, 0 fail" in done.stdout
    assert "best f1 (maximize)" in done.stdout
    look = "look: python -m hpo.ui study=xgb_f1  (MLflow's UI on experiment 'xgb_f1')"
    assert look in done.stdout
    assert (tmp_path / "optuna.journal").is_file() and (tmp_path / "mlflow.db").is_file()

    again = hpo("study=xgb_f1", "study.n_trials=3", *FAST, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "study xgb_f1: 3 complete" in again.stdout


def last_line(stderr: str) -> str:
    """The last line a command printed on stderr (warnings before it are the log)."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def test_trials_failing_in_a_row_print_the_summary_then_one_line(tmp_path: Path) -> None:
    write_prior_study(tmp_path, "tiny_failing", 0.0, 5, max_failures=2)
    done = hpo("study=tiny_failing", "+study.objective.fail_above=-1.0", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "study tiny_failing: 0 complete, 0 pruned, 2 fail" in done.stdout
    line = last_line(done.stderr)
    assert line.startswith("error: 2 trials in a row failed, the last with RuntimeError: x=")
    assert "run the same command to resume" in line


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs with 24 KiB left (root only: CI runs as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (free - 24 * 1024))
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_disk_under_the_journal_ends_in_one_line_and_loses_no_trial(
    tmp_path: Path, full_disk: Path
) -> None:
    """ENOSPC while appending to the journal: one line, the summary, status 1; once space
    is freed, the same command resumes with every finished trial kept (issue 11, defect 8)."""
    write_prior_study(tmp_path, "tiny_full", 0.0, 60)
    args = ("study=tiny_full", f"storage.url=journal:{full_disk}/optuna.journal", "progress=false")
    done = hpo(*args, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    line = last_line(done.stderr)
    assert line.startswith("error: the disk is full (") and "run the same command" in line
    assert "study tiny_full: " in done.stdout
    finished = int(done.stdout.split("study tiny_full: ")[1].split(" complete")[0])
    assert 0 < finished < 60

    (full_disk / "filler").unlink()
    again = hpo(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "study tiny_full: 60 complete" in again.stdout, again.stdout


def test_cmaes_with_categorical_parameters_warns_once(tmp_path: Path) -> None:
    done = hpo(
        "study=xgb_f1",
        "sampler=cmaes",
        "study.n_trials=1",
        "tracking.enabled=false",
        *FAST,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "CMA-ES" in line]
    assert len(warnings) == 1 and "grow_policy" in warnings[0]


@pytest.mark.slow
def test_sigterm_fails_the_running_trial_kills_its_run_and_exits_143(tmp_path: Path) -> None:
    import signal
    import time

    import optuna
    from mlflow.tracking import MlflowClient

    args = ["study=xgb_imbalanced_ap", "study.n_trials=50", "pruner=none", "progress=false"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo", *args],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
    )
    deadline = time.monotonic() + 120
    running: list[optuna.trial.FrozenTrial] = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.5)
        if (tmp_path / "optuna.journal").exists():
            try:
                study = optuna.load_study(study_name="xgb_imbalanced_ap", storage=storage)
            except KeyError:
                continue
            running = [  # started: its MLflow run is on it (SIGTERM before that: test below)
                t
                for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                if "mlflow_run_id" in t.user_attrs
            ]
    assert running, "no trial started"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr

    study = optuna.load_study(study_name="xgb_imbalanced_ap", storage=storage)
    trial = study.trials[running[0].number]
    assert trial.state == optuna.trial.TrialState.FAIL
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "KILLED"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_readme_s_look_command_serves_the_study(tmp_path: Path) -> None:
    """`hpo` (the console script), then the README's quick-start look command: its URL
    line, and the study's runs and artifacts asked over HTTP."""
    import json
    import shutil
    import signal
    import urllib.request

    script = shutil.which("hpo", path=str(Path(sys.executable).parent))
    assert script, "the console script `hpo` is installed beside python"
    done = subprocess.run(
        [script, "study=xgb_f1", "study.n_trials=2", *FAST],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    command = next(
        line.split("#")[0].split()
        for line in readme.splitlines()
        if line.startswith("python -m hpo.ui")
    )
    assert command == ["python", "-m", "hpo.ui", "study=xgb_f1"]
    assert " ".join(command) in done.stdout, "the summary prints the same command"
    port = _free_port()
    ui = subprocess.Popen(
        [sys.executable, *command[1:], f"port={port}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()  # printed once the server answers
        assert line.startswith(f"MLflow UI for study xgb_f1: {base}/#/experiments/"), line
        got = json.load(
            urllib.request.urlopen(
                f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=xgb_f1"
            )
        )
        experiment_id = got["experiment"]["experiment_id"]
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            method="POST",
            data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        found = json.load(urllib.request.urlopen(request))["runs"]
        names = sorted(r["info"]["run_name"] for r in found)
        assert names[-1] == "xgb_f1"
        assert [n[:10] for n in names[:-1]] == ["trial-0000", "trial-0001"]
        parent = next(r for r in found if r["info"]["run_name"] == "xgb_f1")
        artifact = urllib.request.urlopen(
            f"{base}/get-artifact?path=config.yaml&run_uuid={parent['info']['run_id']}"
        ).read()
        assert b"name: xgb_f1" in artifact
    finally:
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=60)
    assert ui.returncode == 0
