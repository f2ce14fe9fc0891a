"""hpo.ui's lookups and URLs: the runs table's route, the one-line errors for a missing
store, experiment or study, and the tracking server asked over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hpo.config import Config, StorageConfig, TrackingConfig
from hpo.errors import UserError
from hpo.ui.target import (
    Experiment,
    OptunaStudy,
    artifacts_root,
    dashboard_url,
    find_experiment,
    find_study,
    runs_url,
)
from tests.hpo.ui.conftest import EXPERIMENT_ID

RERUN = "python -m hpo study=xgb_f1"


def test_the_runs_url_opens_the_runs_table_best_first() -> None:
    url = runs_url("http://127.0.0.1:5000/", Experiment("3", "f1", "maximize"))
    assert url == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
        "&orderByKey=metrics.%60f1%60&orderByAsc=false"
    )


def test_a_metric_to_minimize_sorts_ascending() -> None:
    url = runs_url("http://h:5000", Experiment("3", "rmse", "minimize"))
    assert url.endswith("orderByKey=metrics.%60rmse%60&orderByAsc=true")


def test_without_a_known_metric_the_table_keeps_mlflow_order() -> None:
    url = runs_url("http://h:5000", Experiment("3"))
    assert url == "http://h:5000/#/experiments/3/runs?workflowType=machine_learning"


def test_a_password_in_a_server_url_is_masked() -> None:
    url = runs_url("http://user:hunter2@h:5000", Experiment("3"))
    assert "hunter2" not in url and url.startswith("http://user:***@h:5000/#/")


def test_no_store_names_running_the_study_or_tracking_uri(tmp_path: Path) -> None:
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(UserError) as err:
        find_experiment(tracking, "xgb_f1", RERUN)
    assert str(err.value) == (
        f"no MLflow store at {tmp_path}/mlflow.db: run the study first ({RERUN}) "
        "or give tracking.uri= (the store it logged to)"
    )
    assert not (tmp_path / "mlflow.db").exists(), "a lookup never creates a store"


def test_no_experiment_lists_the_experiments_there(mlflow_uri: str) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    MlflowClient(mlflow_uri).create_experiment(other)
    with pytest.raises(UserError, match=r"^no MLflow experiment 'nope' at sqlite:///") as err:
        find_experiment(TrackingConfig(uri=mlflow_uri), "nope", RERUN)
    assert "(it has: " in str(err.value) and f"run the study first ({RERUN})" in str(err.value)
    assert "give tracking.uri=" in str(err.value)


def test_a_deleted_experiment_says_how_to_restore_it(mlflow_uri: str) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(mlflow_uri)
    experiment_id = client.create_experiment(name)
    client.delete_experiment(experiment_id)
    with pytest.raises(UserError, match=rf"restore --experiment-id {experiment_id}"):
        find_experiment(TrackingConfig(uri=mlflow_uri), name, RERUN)


def test_a_study_s_experiment_is_ranked_by_its_metric_and_holds_its_view(study: Config) -> None:
    found = find_experiment(study.tracking, study.study.name, RERUN)
    client = MlflowClient(study.tracking.uri)
    experiment = client.get_experiment_by_name(study.study.name)
    assert experiment is not None
    assert found == Experiment(experiment.experiment_id, "roc_auc", "maximize", view=True)


def test_a_tracking_server_is_asked_over_http(tracking_server: str) -> None:
    found = find_experiment(TrackingConfig(uri=tracking_server), "known", RERUN)
    assert found == Experiment(EXPERIMENT_ID, "rmse", "minimize")


def test_an_unreachable_tracking_server_is_one_line() -> None:
    with pytest.raises(UserError, match=r"cannot reach the MLflow tracking server"):
        find_experiment(TrackingConfig(uri="http://127.0.0.1:9", timeout=3), "x", RERUN)


def test_artifacts_go_where_the_study_put_them(tmp_path: Path) -> None:
    default = TrackingConfig(uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert artifacts_root(default) == str(tmp_path / "mlartifacts")
    given = TrackingConfig(uri=default.uri, artifact_location="/srv/artifacts")
    assert artifacts_root(given) == "/srv/artifacts"


def test_the_optuna_study_as_optuna_dashboard_takes_it(study: Config) -> None:
    found = find_study(study.storage, study.study.name, RERUN)
    journal = study.storage.url.removeprefix("journal:")
    assert found == OptunaStudy(journal, 0, study.storage.url)
    assert dashboard_url("http://127.0.0.1:8080/", found) == (
        "http://127.0.0.1:8080/dashboard/studies/0"
    )


def test_no_optuna_storage_names_running_the_study(tmp_path: Path) -> None:
    storage = StorageConfig(url=f"journal:{tmp_path}/optuna.journal")
    with pytest.raises(UserError, match=r"^no Optuna storage at .*optuna.journal: run the study"):
        find_study(storage, "xgb_f1", RERUN)
    assert not (tmp_path / "optuna.journal").exists()


def test_an_unknown_optuna_study_lists_the_studies(study: Config) -> None:
    with pytest.raises(UserError, match=r"no study 'nope' in journal:.* \(it has: tiny_prior-"):
        find_study(study.storage, "nope", RERUN)


def test_a_study_s_own_view_is_opened_by_its_share_key_alone() -> None:
    """MLflow ignores a shared view when the URL also sorts: the view sorts itself."""
    url = runs_url("http://h:5000", Experiment("3", "f1", "maximize", view=True))
    assert url == (
        "http://h:5000/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=hpo"
    )
