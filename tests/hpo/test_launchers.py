"""Hydra launchers (conf/launcher/): N identical workers of one study from one command.

joblib runs here for real (two jobs, one study); SLURM's submitit launcher can
only be composed on a machine without SLURM.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpo.config import CONF_DIR

REPO = Path(__file__).parents[2]
STUDY = """
name: tiny_launch
objective:
  _target_: tests.hpo.helpers.LockstepObjective
  barrier: BARRIER
  parties: 2
  tick: 0.3
data: breast_cancer
cv: {scheme: holdout}
metric: roc_auc
n_trials: 5
space:
  x: {type: float, low: 0.0, high: 1.0}
"""


def multirun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    barrier = tmp_path / "barrier"
    barrier.mkdir(exist_ok=True)
    (tmp_path / "tiny_launch.yaml").write_text(STUDY.replace("BARRIER", str(barrier)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HPO_STUDIES_DIR": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "hpo",
        "-m",
        "launcher=joblib",
        "worker_id=range(2)",
        "hydra.launcher.n_jobs=2",
        "study=tiny_launch",
        "pruner=none",
        f"storage.url=journal:{tmp_path}/optuna.journal",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        "progress=false",
        *overrides,
    ]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_joblib_launcher_runs_two_workers_on_one_study(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install hpo[launchers]")
    done = multirun(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.load_study(study_name="tiny_launch", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2, "both jobs ran trials"
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny_launch")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [
        "tiny_launch",
        *(f"trial-{n:04d}" for n in range(5)),
    ]
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow
def test_a_user_error_in_a_launcher_job_is_one_line_and_status_2(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install hpo[launchers]")
    done = multirun(tmp_path, "study.n_trials=0", "tracking.enabled=false")
    assert done.returncode == 2, done.stderr
    assert "error: study.n_trials is 0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("launcher", "target"),
    [("joblib", "JoblibLauncher"), ("slurm", "SlurmLauncher")],
)
def test_launcher_configs_compose_with_a_sweep_over_worker_id(launcher: str, target: str) -> None:
    module = {"joblib": "hydra_joblib_launcher", "slurm": "hydra_submitit_launcher"}[launcher]
    pytest.importorskip(f"hydra_plugins.{module}", reason="pip install hpo[launchers]")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"launcher={launcher}", "study=xgb_f1", "storage=postgres"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith(target)
    assert str(cfg.hydra.sweeper.params.worker_id).startswith("range(")
    assert cfg.worker_id == 0
    assert "launcher" not in cfg, "the launcher group only sets hydra.* (and tracking)"
