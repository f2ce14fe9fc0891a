"""A study folder moved or copied elsewhere: its runs show every plot and its models load,
through MLflow, from any working directory; the study resumes there; the UI shows it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import mlflow
import numpy as np
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hpo.names import MODEL_URI_TAG, ROLE_STUDY, ROLE_TAG
from hpo.tracking import relocate as relocate_module
from hpo.tracking.relocate import relocate
from hpo.tracking.store import default_artifacts
from tests.hpo.helpers import REPO, hpo
from tests.hpo.runner.helpers import FAST_XGB
from tests.hpo.ui.conftest import free_port
from tests.hpo.ui.test_command import UI

STUDY = ["study=xgb_f1", "study.n_trials=2", *FAST_XGB, "progress=false"]


# --- the rule, on small stores made with MlflowClient ------------------------------------


def make_store(folder: Path) -> str:
    """A store in ``folder`` as hpo leaves one: experiment ``s`` in ./mlartifacts/s with a
    run's plot, a logged model and its registered version; experiment ``bare`` without
    artifacts. The store's URI."""
    uri = f"sqlite:///{folder}/mlflow.db"
    folder.mkdir(parents=True)
    client = MlflowClient(uri, registry_uri=uri)
    root = default_artifacts(uri)
    experiment = client.create_experiment("s", artifact_location=f"{root}/s")
    client.create_experiment("bare", artifact_location=f"{root}/bare")
    run_id = client.create_run(experiment).info.run_id
    client.log_text(run_id, "<html>plot</html>", "plots/slice.html")
    model_id = client.create_logged_model(experiment, name="best", source_run_id=run_id).model_id
    files = folder.parent / f"{folder.name}-model"
    files.mkdir()
    (files / "MLmodel").write_text("flavors: {}\n")
    client.log_model_artifacts(model_id, str(files))
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # the registry finds the logged model there
    try:
        client.create_registered_model("best")
        client.create_model_version("best", source=f"models:/{model_id}", model_id=model_id)
    finally:
        mlflow.set_tracking_uri(before)
    return uri


def locations(db: Path) -> list[str]:
    """Every artifact location the store records (experiment Default's left out)."""
    with sqlite3.connect(db) as conn:
        found = [row[0] for row in conn.execute("SELECT artifact_location FROM experiments")]
        found += [row[0] for row in conn.execute("SELECT artifact_uri FROM runs")]
        found += [row[0] for row in conn.execute("SELECT artifact_location FROM logged_models")]
        found += [row[0] for row in conn.execute("SELECT storage_location FROM model_versions")]
    return [location for location in found if "/mlruns/" not in location]


def test_a_moved_store_points_at_its_own_artifacts(tmp_path: Path) -> None:
    make_store(tmp_path / "first")
    shutil.move(tmp_path / "first", tmp_path / "moved")
    uri = f"sqlite:///{tmp_path}/moved/mlflow.db"
    assert relocate(uri) == [f"{tmp_path}/first/mlartifacts"]
    assert all(
        loc.startswith(f"{tmp_path}/moved/mlartifacts/")
        for loc in locations(tmp_path / "moved/mlflow.db")
    )
    client = MlflowClient(uri, registry_uri=uri)
    assert client.get_model_version_download_uri("best", "1").startswith(f"{tmp_path}/moved/")
    assert relocate(uri) == [], "once is enough"


def test_a_copy_points_at_its_own_artifacts_and_the_original_keeps_its_own(tmp_path: Path) -> None:
    original = make_store(tmp_path / "first")
    before = locations(tmp_path / "first/mlflow.db")
    shutil.copytree(tmp_path / "first", tmp_path / "copy")
    assert relocate(original) == []
    assert relocate(f"sqlite:///{tmp_path}/copy/mlflow.db") == [f"{tmp_path}/first/mlartifacts"]
    assert all(
        loc.startswith(f"{tmp_path}/copy/") for loc in locations(tmp_path / "copy/mlflow.db")
    )
    assert locations(tmp_path / "first/mlflow.db") == before


def test_a_store_copied_without_its_artifacts_still_shows_the_original_s(tmp_path: Path) -> None:
    make_store(tmp_path / "first")
    (tmp_path / "alone").mkdir()
    shutil.copy(tmp_path / "first/mlflow.db", tmp_path / "alone/mlflow.db")
    assert relocate(f"sqlite:///{tmp_path}/alone/mlflow.db") == []
    assert all(
        loc.startswith(f"{tmp_path}/first/") for loc in locations(tmp_path / "alone/mlflow.db")
    )


def test_the_configured_artifact_location_is_never_touched(tmp_path: Path) -> None:
    make_store(tmp_path / "first")
    shutil.move(tmp_path / "first", tmp_path / "moved")
    kept = f"{tmp_path}/first/mlartifacts"  # as if tracking.artifact_location named it
    assert relocate(f"sqlite:///{tmp_path}/moved/mlflow.db", keep=kept) == []
    assert all(loc.startswith(kept) for loc in locations(tmp_path / "moved/mlflow.db"))


def test_no_store_or_a_server_is_left_alone(tmp_path: Path) -> None:
    assert relocate(f"sqlite:///{tmp_path}/none.db") == []
    assert not (tmp_path / "none.db").exists(), "never creates a store"
    assert relocate("http://127.0.0.1:5000") == []


def test_a_locked_store_is_left_as_it_was_in_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    make_store(tmp_path / "first")
    shutil.move(tmp_path / "first", tmp_path / "moved")
    monkeypatch.setattr(relocate_module, "BUSY_TIMEOUT", 0.1)
    with sqlite3.connect(tmp_path / "moved/mlflow.db") as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with caplog.at_level(logging.WARNING, logger="hpo.tracking"):
            assert relocate(f"sqlite:///{tmp_path}/moved/mlflow.db") == []
        holder.rollback()
    assert [r.getMessage() for r in caplog.records if r.name == "hpo.tracking"] == [
        f"MLflow's artifact locations in {tmp_path}/moved/mlflow.db still point where the "
        "folder was (database is locked): its plots and models show once hpo can update them"
    ]


# --- a real study, moved -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A finished xgb_f1 study (python -m hpo, its own folder), then moved with shutil.move:
    (the folder it ran in, now gone; the moved folder, never opened since). Each test
    copies the moved folder: byte for byte what the move left."""
    base = tmp_path_factory.mktemp("moving")
    first = base / "study"
    first.mkdir()
    done = hpo(*STUDY, cwd=first)
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.move(first, base / "moved")
    yield first, base / "moved"
    assert not first.exists(), "nothing was written where the folder was"


@pytest.fixture
def moved(ran: tuple[Path, Path], tmp_path: Path) -> Path:
    """This test's copy of the moved study folder."""
    folder = tmp_path / "elsewhere" / "study"
    shutil.copytree(ran[1], folder)
    return folder


def python_m(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def parent_run(client: MlflowClient) -> Run:
    experiment = client.get_experiment_by_name("xgb_f1")
    assert experiment is not None
    found = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = '{ROLE_STUDY}'")
    assert len(found) == 1
    return found[0]


def every_artifact(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """The paths of every artifact file of the run, listed through MLflow."""
    files = []
    for info in client.list_artifacts(run_id, path):
        files += every_artifact(client, run_id, info.path) if info.is_dir else [info.path]
    return files


def shows_everything(folder: Path, download: Path) -> None:
    """From a working directory that is not ``folder``: every artifact of the parent run
    downloads through MLflow, the best model loads from its recorded URI and predicts, and
    every recorded location lies in ``folder``."""
    assert Path.cwd() != folder
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(uri)
    parent = parent_run(client)
    files = every_artifact(client, parent.info.run_id)
    on_disk = folder / "mlartifacts" / "xgb_f1" / parent.info.run_id / "artifacts"
    assert sorted(files) == sorted(str(p.relative_to(on_disk)) for p in on_disk.rglob("*.*"))
    assert "config.yaml" in files and any(f.endswith(".html") for f in files)
    for path in files:
        local = Path(client.download_artifacts(parent.info.run_id, path, str(download)))
        assert local.stat().st_size > 0, path
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # as a user does: models:/ URIs resolve there
    try:
        model = mlflow.pyfunc.load_model(parent.data.tags[MODEL_URI_TAG])
        rows = model.input_example  # logged with the model, so also read from the folder
        predicted = np.asarray(model.predict(rows))
    finally:
        mlflow.set_tracking_uri(before)
    assert rows is not None and predicted.shape[0] == len(rows) > 0
    assert all(loc.startswith(f"{folder}/mlartifacts/") for loc in locations(folder / "mlflow.db"))


@pytest.mark.slow
def test_a_moved_study_shows_every_plot_and_loads_its_model(
    ran: tuple[Path, Path], moved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = python_m("hpo.check", "study=xgb_f1", cwd=moved)  # the first hpo command there
    assert checked.returncode == 0, checked.stdout + checked.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    shows_everything(moved, tmp_path / "downloads")
    assert not ran[0].exists()


@pytest.mark.slow
def test_a_moved_study_resumes_there(
    ran: tuple[Path, Path], moved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = hpo(*STUDY, "study.n_trials=3", cwd=moved)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "study xgb_f1: 3 complete" in again.stdout
    monkeypatch.chdir(tmp_path)
    shows_everything(moved, tmp_path / "downloads")
    assert not ran[0].exists(), "the resumed study wrote nothing where the folder was"


@pytest.mark.slow
def test_the_ui_on_a_moved_study_serves_its_plots_and_model(moved: Path) -> None:
    port = free_port()
    ui = UI("study=xgb_f1", f"port={port}", cwd=moved)
    try:
        assert ui.line().startswith("MLflow UI for study xgb_f1: "), ui.err
        parent = parent_run(MlflowClient(f"sqlite:///{moved}/mlflow.db"))
        run_id = parent.info.run_id
        base = f"http://127.0.0.1:{port}"
        pages = [path for path in served(base, run_id) if path.endswith(".html")]
        assert pages
        for path in pages:  # as the UI's artifact view fetches them
            assert "<html" in get(f"{base}/get-artifact", run_id=run_id, path=path).lower()
        model_id = parent.data.tags[MODEL_URI_TAG].removeprefix("models:/")
        files = f"{base}/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files"
        assert "flavors:" in get(files, artifact_file_path="MLmodel")
    finally:
        assert ui.stop(signal.SIGINT) == 0


def get(url: str, **query: str) -> str:
    """The body of a 200 answer from the UI's server (no proxy: loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{url}?{urlencode(query)}", timeout=30) as response:
        assert response.status == 200
        return str(response.read().decode())


def served(base: str, run_id: str, path: str = "") -> list[str]:
    """Every artifact file of the run, as the UI's server lists them."""
    listed = json.loads(get(f"{base}/ajax-api/2.0/mlflow/artifacts/list", run_id=run_id, path=path))
    files = []
    for info in listed.get("files", []):
        files += served(base, run_id, info["path"]) if info["is_dir"] else [info["path"]]
    return files
