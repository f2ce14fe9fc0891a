"""tracking=server: workers log through a real `mlflow server` (PostgreSQL, served artifacts)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import requests
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.config import TrackingConfig
from hpo.errors import UserError
from hpo.tracking.tracker import Tracker
from tests.hpo.helpers import write_prior_study
from tests.hpo.pg import new_database, sqlalchemy_url

REPO = Path(__file__).parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URI, artifacts folder) of an MLflow server on a new PostgreSQL database, for the module."""
    root = tmp_path_factory.mktemp("mlflow-server")
    artifacts = root / "artifacts"
    port = free_port()
    with new_database("hpo_mlflow") as db, (root / "server.log").open("w") as log:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            sqlalchemy_url(db),
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # GenAI job runner
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        uri = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(uri, process, root / "server.log")
            yield uri, artifacts
        finally:
            os.killpg(process.pid, signal.SIGTERM)  # the server and its uvicorn worker
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_until_up(uri: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not up in 120 s:\n{log.read_text()[-3000:]}")


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_log_one_study_through_the_server_and_agree(
    tmp_path: Path, server: tuple[str, Path]
) -> None:
    uri, artifacts = server
    write_prior_study(tmp_path, "tiny_srv", sleep=0.3, n_trials=8)
    with new_database() as storage_url:
        env = {
            **os.environ,
            "HPO_STORAGE_URL": storage_url,
            "HPO_TRACKING_URI": uri,
            "PYTHONPATH": str(REPO),
        }
        command = [
            *(sys.executable, "-m", "hpo", "study=tiny_srv", "storage=postgres"),
            *("tracking=server", "pruner=none", "progress=false"),
        ]
        workers = [
            subprocess.Popen(command, cwd=tmp_path, env=env, text=True, stdout=-1, stderr=-1)
            for _ in range(2)
        ]
        outputs = [w.communicate(timeout=180) for w in workers]
        for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, stderr
            assert "View run" not in stdout, "MLflow's per-run URL lines are suppressed"
        assert any(f"open {uri}/#/experiments/" in stdout for stdout, _ in outputs)
        agree = subprocess.run(
            [sys.executable, "-m", "hpo.check", *command[3:]],
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
        )
        assert agree.returncode == 0, agree.stdout + agree.stderr
        assert "MLflow agrees" in agree.stdout
        study = optuna.load_study(study_name="tiny_srv", storage=sqlalchemy_url(storage_url))
        finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
        parent_attr = study.user_attrs["mlflow_parent_run_id"]

    client = MlflowClient(uri)
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    assert [e.name for e in experiments] == ["tiny_srv"]
    assert experiments[0].artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiments[0].experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_id == parent_attr
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    assert sorted(int(r.data.tags["hpo.trial"]) for r in children) == sorted(
        t.number for t in finished
    )
    assert len(finished) == 8
    assert {r.info.status for r in children} == {"FINISHED"}
    assert len({r.data.tags["hpo.pid"] for r in children}) == 2, "both workers logged trials"

    # plots, config and the refit model went through the server to its artifacts folder
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.yaml", "report.html"} <= logged
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # models:/ URIs resolve through the tracking server
    try:
        model = mlflow.pyfunc.load_model(parent.data.tags["hpo.model_uri"])
    finally:
        mlflow.set_tracking_uri(before)
    columns = model.metadata.get_input_schema().input_names()  # the data's feature names
    assert np.asarray(model.predict({name: [0.0, 0.0] for name in columns})).shape[0] == 2
    assert list(artifacts.rglob("MLmodel")), "the model's files are on the server's side"
    assert list(artifacts.rglob("config.yaml"))


def test_an_unreachable_server_is_one_clear_error() -> None:
    cfg = TrackingConfig(uri=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(UserError, match=r"cannot reach the MLflow tracking server.*refused"):
        Tracker(cfg, "x", "tpe")
    assert time.monotonic() - started < 10, "no minutes of MLflow client retries"


def test_a_long_curve_keeps_evenly_spaced_steps_with_its_first_and_last() -> None:
    from hpo.tracking.records import thinned

    kept = thinned(100, 20)
    assert len(kept) == 20 and kept[0] == 0 and kept[-1] == 99
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert max(gaps) - min(gaps) <= 1, "evenly spaced"
    assert thinned(10, 20) == list(range(10)), "a short curve is kept whole"
    assert thinned(100, 0) == list(range(100)), "0 keeps every point"
    assert thinned(7, 1) == [6], "one point: the last"


def test_a_trial_s_curves_are_thinned_on_their_own_steps_and_its_folds_kept_whole(
    tmp_path: Path,
) -> None:
    """Curves were 97.5% of a study's metric rows (536 a trial): tracking.curve_points
    bounds each, the step staying the epoch; the fold scores are never thinned."""
    from hpo.tracking.records import TrialRecord

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = TrackingConfig(uri=uri, writer="inline", spool=str(tmp_path), curve_points=5)
    tracker = Tracker(cfg, "thin", "tpe")
    tracker.open_parent(None, {})
    run_id = tracker.start_trial(0)
    curve = [1.0 / (epoch + 1) for epoch in range(50)]
    folds = [0.1 * k for k in range(30)]
    record = TrialRecord(
        0, "COMPLETE", {}, {"f1": 0.5}, {"f1_fold": folds}, curves={"loss/fold_0": curve}
    )
    tracker.end_trial(run_id, record)
    tracker.flush()
    client = MlflowClient(uri)
    history = client.get_metric_history(run_id, "loss/fold_0")
    steps = sorted(m.step for m in history)
    assert len(steps) == 5 and steps[0] == 0 and steps[-1] == 49
    assert all(m.value == pytest.approx(curve[m.step]) for m in history)
    assert len(client.get_metric_history(run_id, "f1_fold")) == 30
