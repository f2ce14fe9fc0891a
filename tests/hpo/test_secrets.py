"""A canary database password must appear nowhere: output, Hydra's files, MLflow, the process list.

The role has password authentication set up; the test server may trust
127.0.0.1 anyway, which does not matter: the point is that hpo carries the
password to the database and nowhere else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from hpo.config import StorageConfig
from hpo.secrets import hide_secrets, mask
from hpo.storages import display_url
from tests.hpo.helpers import write_prior_study
from tests.hpo.pg import admin, new_database, sqlalchemy_url

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("arg", "expected", "env"),
    [
        (
            "storage.url=postgresql://u:pw@h:5432/db",
            "storage.url=${oc.env:HPO_STORAGE_URL}",
            ("HPO_STORAGE_URL", "postgresql://u:pw@h:5432/db"),
        ),
        (
            "++tracking.uri='http://u:pw@mlflow:5000'",
            "++tracking.uri=${oc.env:HPO_TRACKING_URI}",
            ("HPO_TRACKING_URI", "http://u:pw@mlflow:5000"),
        ),
        ("storage.url=postgresql://u@h/db", "storage.url=postgresql://u@h/db", None),
        ("storage.url=${oc.env:HPO_STORAGE_URL}", "storage.url=${oc.env:HPO_STORAGE_URL}", None),
        ("seed=1", "seed=1", None),
        ("-m", "-m", None),
    ],
)
def test_passwords_on_the_command_line_move_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, arg: str, expected: str, env: tuple[str, str] | None
) -> None:
    for name in ("HPO_STORAGE_URL", "HPO_TRACKING_URI"):
        monkeypatch.setenv(name, "before")  # restored after the test
    assert hide_secrets([arg]) == [expected]
    if env is not None:
        assert os.environ[env[0]] == env[1]


def test_the_composed_config_holds_the_variable_not_the_password(tmp_path: Path) -> None:
    url = "postgresql://user:hpo-canary-cfg@127.0.0.1:5432/db"
    command = [sys.executable, "-m", "hpo", f"storage.url={url}", "--cfg", "job"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "url: ${oc.env:HPO_STORAGE_URL}" in done.stdout
    assert "hpo-canary-cfg" not in done.stdout + done.stderr


@pytest.fixture
def canary() -> Iterator[tuple[str, str]]:
    """(database URL with the password, the password) for a new role owning a new database."""
    suffix = uuid.uuid4().hex[:10]
    role, password = f"hpo_canary_{suffix}", f"hpo-canary-{suffix}"
    with admin() as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        with new_database("hpo_secret", owner=role) as url:
            host_db = url.split("@", 1)[1]
            yield f"postgresql://{role}:{password}@{host_db}", password
    finally:
        with admin() as connection:
            connection.execute(f"DROP ROLE IF EXISTS {role}")


def hpo(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[str, str, list[list[str]]]:
    """Run ``python -m hpo`` to the end: (stdout, stderr, every process list seen)."""
    write_prior_study(tmp_path, "tiny_secret", sleep=0.25, n_trials=4)
    command = [
        *(sys.executable, "-m", "hpo", *args, "study=tiny_secret", "storage=postgres"),
        *("pruner=none", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", "progress=false"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    seen: list[list[str]] = []
    while process.poll() is None:  # the worker and its MLflow writer process, while they run
        listing = subprocess.run(
            ["ps", "-eww", "-o", "args"], capture_output=True, text=True
        ).stdout
        seen.append(listing.splitlines())
        time.sleep(0.2)
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    return stdout, stderr, seen


def assert_nowhere(secret: str, tmp_path: Path, url: str, *texts: str) -> None:
    """Not in the texts, any file under tmp_path (Hydra's, MLflow's), MLflow's API, Optuna."""
    for text in texts:
        assert secret not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in files), "Hydra saved its files"
    for path in files:  # .hydra/*.yaml, multirun.yaml, the .log, mlflow.db, every artifact
        assert secret.encode() not in path.read_bytes(), f"the password is in {path}"

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny_secret")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(runs) > 1
    for run in runs:
        logged = json.dumps([run.data.params, run.data.tags, list(run.data.metrics)])
        assert secret not in logged
        for artifact in client.list_artifacts(run.info.run_id):
            assert secret not in artifact.path
    assert any(a.path == "config.yaml" for r in runs for a in client.list_artifacts(r.info.run_id))

    study = optuna.load_study(study_name="tiny_secret", storage=sqlalchemy_url(url))
    attrs: list = [study.user_attrs]
    attrs += [[t.user_attrs, t.system_attrs, t.params] for t in study.trials]
    assert secret not in json.dumps(attrs, default=str)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_password_from_the_environment_is_never_shown(
    tmp_path: Path, canary: tuple[str, str]
) -> None:
    url, secret = canary
    args = ["workers=2", f"hydra.run.dir={tmp_path}/run"]  # the parent and 2 forked workers
    stdout, stderr, listings = hpo(tmp_path, args, {"HPO_STORAGE_URL": url})
    ours = [[line for line in listing if "study=tiny_secret" in line] for listing in listings]
    assert max(len(processes) for processes in ours) >= 3, "ps saw the workers beside the parent"
    assert not [line for listing in listings for line in listing if secret in line], "ps"
    assert "hpo-canary-" not in stdout + stderr
    assert "***" in stdout, "the storage URL is shown masked"
    assert_nowhere(secret, tmp_path, url, stdout, stderr)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_password_typed_on_the_command_line_is_kept_out_of_every_file(
    tmp_path: Path, canary: tuple[str, str]
) -> None:
    """Passed as storage.url=... in a multirun (-m): Hydra saves and logs the overrides.

    The process list does show it: nothing can hide a command line from ps,
    which is why the README says to use HPO_STORAGE_URL or ~/.pgpass.
    """
    url, secret = canary
    env = {k: v for k, v in os.environ.items() if k != "HPO_STORAGE_URL"}
    args = ["-m", f"storage.url={url}", f"hydra.sweep.dir={tmp_path}/multirun"]
    stdout, stderr, _ = hpo(tmp_path, args, env)
    assert (tmp_path / "multirun" / "multirun.yaml").exists()
    assert_nowhere(secret, tmp_path, url, stdout, stderr)


# --- mask: every URL's password, wherever it is shown ---------------------------


def test_mask_hides_the_password():
    assert mask("postgresql://user:secret@host/db") == "postgresql://user:***@host/db"


def test_mask_hides_the_password_with_a_driver_and_port():
    masked = mask("postgresql+psycopg://user:s3cr%40t@db.example.org:5432/optuna")
    assert masked == "postgresql+psycopg://user:***@db.example.org:5432/optuna"


def test_mask_hides_every_password_in_a_message():
    masked = mask("cannot reach postgresql://a:pw1@h1/db nor mysql://b:pw2@h2/db")
    assert masked == "cannot reach postgresql://a:***@h1/db nor mysql://b:***@h2/db"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@host/db",
        "postgresql://user@host:5432/db",
        "sqlite:///tmp/optuna.db",
        "journal:optuna.journal",
    ],
)
def test_mask_leaves_urls_without_a_password_unchanged(url):
    assert mask(url) == url


def test_display_url_hides_the_password():
    shown = display_url(StorageConfig(url="postgresql://user:secret@host/db"))
    assert "secret" not in shown
    assert "user" in shown
    assert "host/db" in shown
