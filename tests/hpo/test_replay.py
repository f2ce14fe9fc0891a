"""python -m hpo.replay: a trial re-run from its MLflow run, with one line on what differs.

Studies are real (the runner, in-process, on this test's journal and the
session's MLflow store); what a replay sees is changed the way it changes for
a user: a data file edited after the study, the storage moved away.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from hpo import names
from hpo.config import Config, StorageConfig
from hpo.errors import UserError
from hpo.replay import main
from hpo.replay import versions as replay_versions
from hpo.replay.fingerprints import _unmasked
from hpo.replay.recorded import NotReplayable, typed_params
from hpo.runner import run
from hpo.space import parse_space
from tests.hpo.helpers import ALWAYS_PRUNE, REPO
from tests.hpo.runner.helpers import FAST_XGB, PRIOR, runs

QUICK = ["tracking.writer=inline", "evaluation.bbc_boot=0"]  # no writer process to start


def replay(
    cfg: Config, run_id: str, capsys: pytest.CaptureFixture[str], *more: str
) -> tuple[int | str | None, list[str], list[str]]:
    """(exit status, the stdout lines, the stderr lines) of python -m hpo.replay, in-process."""
    with pytest.raises(SystemExit) as ended:
        main([run_id, f"tracking.uri={cfg.tracking.uri}", *more])
    out, err = capsys.readouterr()
    return ended.value.code, out.splitlines(), [e for e in err.splitlines() if e.strip()]


def finished(make_cfg: Callable[..., Config], *overrides: str) -> Config:
    cfg = make_cfg(*overrides, *QUICK)
    run(cfg)
    return cfg


def test_a_finished_trial_replays_to_its_recorded_value(make_cfg, capsys) -> None:
    cfg = finished(make_cfg, "study=xgb_f1", "study.n_trials=2", "pruner=none", *FAST_XGB)
    _, children = runs(cfg)
    child = children[1]
    status, out, err = replay(cfg, child.info.run_id, capsys)
    assert status == 0, out + err
    assert len(out) == 1 and not [e for e in err if e.startswith("error")]
    recorded = child.data.metrics["f1"]
    shown = re.escape(f"recorded {recorded:.4f}, within 1e-6")
    assert re.match(rf"trial 1 of {cfg.study.name} replayed: f1 \d\.\d{{4}} \({shown}\)", out[0])
    assert "data and CV folds as the study recorded" in out[0]
    assert "xgboost-cpu" in out[0] and "as recorded (tags on the study's run)" in out[0]


def test_an_edited_data_file_is_one_line_naming_the_fingerprint(
    make_cfg, capsys, tmp_path: Path
) -> None:
    """The study's CSV is changed after it ran (ten labels flipped): the replay is scored on
    other data, and says so before it says that the value moved."""
    csv = tmp_path / "rows.csv"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    frame["label"] = (frame["a"] + rng.normal(size=120) > 0.3).astype(int)
    frame.to_csv(csv, index=False)
    data = f"study.data={{path:'{csv}',target:label}}"
    cfg = finished(make_cfg, *PRIOR, data, "study.metric=accuracy", "study.n_trials=1")
    _, children = runs(cfg)
    frame.loc[:9, "label"] = 1 - frame.loc[:9, "label"]
    frame.to_csv(csv, index=False)

    status, out, err = replay(cfg, children[0].info.run_id, capsys)
    assert status == 1 and len(out) == 1, out + err
    line = out[0]
    assert line.startswith(f"trial 0 of {cfg.study.name} replayed with differences: accuracy ")
    assert "; data fingerprint differs (now 120 rows x 3 columns, hash " in line
    assert "; the study recorded 120 rows x 3 columns, hash " in line


def test_without_the_optuna_storage_the_fingerprints_are_not_checked_and_said_so(
    make_cfg, capsys, tmp_path: Path
) -> None:
    cfg = finished(make_cfg, *PRIOR, "study.n_trials=1")
    _, children = runs(cfg)
    shutil.move(tmp_path / "optuna.journal", tmp_path / "elsewhere.journal")
    status, out, _ = replay(cfg, children[0].info.run_id, capsys)
    assert status == 0
    assert f"trial 0 of {cfg.study.name} replayed: roc_auc 0.5000" in out[0]
    assert "data and CV folds not checked (no Optuna storage at " in out[0]

    moved = f"storage.url=journal:{tmp_path}/elsewhere.journal"  # told where it went
    status, out, _ = replay(cfg, children[0].info.run_id, capsys, moved)
    assert status == 0 and "data and CV folds as the study recorded" in out[0]


def test_the_study_run_and_a_package_version_that_differs(make_cfg, capsys, monkeypatch) -> None:
    """Status 1 for the parent run itself, and for scikit-learn other than the version the
    best model's requirements pinned."""
    cfg = finished(make_cfg, *PRIOR, "study.n_trials=1")
    parent, children = runs(cfg)
    status, out, _ = replay(cfg, parent.info.run_id, capsys)
    assert status == 1 and len(out) == 1
    assert out[0].startswith(f"run {parent.info.run_id} is not a trial run: it is the parent run")

    real = replay_versions.installed
    monkeypatch.setattr(
        replay_versions, "installed", lambda d: "0.1.0" if d == "scikit-learn" else real(d)
    )
    status, out, _ = replay(cfg, children[0].info.run_id, capsys)
    assert status == 1
    pinned = real("scikit-learn")
    assert f"with differences: scikit-learn {pinned} recorded, 0.1.0 installed" in out[0]


def test_versions_tagged_on_the_study_run_come_before_the_model_requirements(
    make_cfg, capsys
) -> None:
    """The parent run is tagged with the versions installed when it was created (under
    names.VERSION_PREFIX): those are what the replay compares."""
    cfg = finished(make_cfg, *PRIOR, "study.n_trials=1")
    parent, children = runs(cfg)
    optuna_version = replay_versions.installed("optuna")
    assert parent.data.tags[names.VERSION_PREFIX + "optuna"] == optuna_version
    assert parent.data.tags[names.VERSION_PREFIX + "numpy"] == replay_versions.installed("numpy")
    status, out, _ = replay(cfg, children[0].info.run_id, capsys)
    assert status == 0 and "as recorded (tags on the study's run)" in out[0], out

    client = MlflowClient(cfg.tracking.uri)
    client.set_tag(parent.info.run_id, names.VERSION_PREFIX + "numpy", "1.0.0")
    status, out, _ = replay(cfg, children[0].info.run_id, capsys)
    assert status == 1
    assert f"numpy 1.0.0 recorded, {replay_versions.installed('numpy')} installed" in out[0]
    assert "optuna" not in out[0].split("numpy")[1], "only what differs is named"


def test_a_masked_storage_password_comes_back_from_the_environment(monkeypatch) -> None:
    masked = StorageConfig(url="postgresql://hpo:***@db.example:5432/optuna")
    monkeypatch.setenv("HPO_STORAGE_URL", "postgresql://hpo:s3cret@db.example:5432/optuna")
    assert _unmasked(masked).url.endswith("hpo:s3cret@db.example:5432/optuna")
    monkeypatch.setenv("HPO_STORAGE_URL", "postgresql://hpo:s3cret@other:5432/optuna")
    with pytest.raises(UserError, match=r"masked in config\.yaml: set HPO_STORAGE_URL"):
        _unmasked(masked)


def test_a_trial_of_a_study_that_never_finished_replays(make_cfg, capsys) -> None:
    """config.yaml is on the parent run from its creation, not only from the study's end."""
    cfg = finished(make_cfg, *PRIOR, "study.n_trials=1", "trials_only=true")  # never finished
    _, children = runs(cfg)
    status, out, _ = replay(cfg, children[0].info.run_id, capsys)
    assert status == 0 and " replayed: roc_auc 0.5000 (recorded 0.5000" in out[0], out


def test_a_parent_run_without_config_yaml_cannot_be_replayed(make_cfg, capsys) -> None:
    """A study logged before config.yaml was written at the start (or the file lost)."""
    cfg = finished(make_cfg, *PRIOR, "study.n_trials=1")
    parent, children = runs(cfg)
    where = mlflow.artifacts.download_artifacts(
        f"runs:/{parent.info.run_id}/config.yaml"
    )  # a local store: the download is a copy, so remove the stored file itself
    stored = Path(parent.info.artifact_uri.removeprefix("file://")) / "config.yaml"
    assert Path(where).exists() and stored.exists()
    stored.unlink()
    status, out, _ = replay(cfg, children[0].info.run_id, capsys)
    assert status == 1 and len(out) == 1
    assert (
        f"the parent run {parent.info.run_id} of study '{cfg.study.name}' has no config.yaml"
        in (out[0])
    )


def test_a_trial_pruned_after_whole_folds_replays_those_folds(make_cfg, capsys) -> None:
    cfg = finished(make_cfg, "study=tiny_prior", "pruner=median", "study.n_trials=1", *ALWAYS_PRUNE)
    _, children = runs(cfg)
    assert children[0].data.tags["hpo.state"] == "PRUNED"
    status, out, _ = replay(cfg, children[0].info.run_id, capsys)
    assert status == 0, out
    assert "replayed: roc_auc_partial 0.5000 (recorded 0.5000, within 1e-6)" in out[0]


def test_an_unknown_run_id_is_one_error_line_and_status_2(mlflow_uri: str, tmp_path) -> None:
    """As a user runs it: ``python -m hpo.replay`` in a shell, a store that exists."""
    MlflowClient(mlflow_uri).search_experiments()  # the session's store, created if first
    for args, said in (
        ([f"tracking.uri={mlflow_uri}"], "error: no MLflow run '0123abcd' at sqlite:///"),
        ([f"tracking.uri=sqlite:///{tmp_path}/none.db"], "error: no MLflow store at "),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "hpo.replay", "0123abcd", *args],
            cwd=tmp_path,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.splitlines() == [done.stderr.strip()]
        assert done.stderr.startswith(said), done.stderr


def test_string_params_come_back_as_the_space_types() -> None:
    space = parse_space(
        {
            "depth": {"type": "int", "low": 2, "high": 9},
            "rate": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True},
            "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
            "drop": {"type": "float", "low": 0.0, "high": 0.5, "when": {"booster": "dart"}},
            "flag": {"type": "categorical", "choices": [True, False, 3]},
        }
    )
    rate = 0.012345678901234567
    strings = {"depth": "4", "rate": str(rate), "booster": "gbtree", "flag": "3"}
    params = typed_params(space, strings)
    assert params == {"depth": 4, "rate": rate, "booster": "gbtree", "flag": 3}
    assert type(params["depth"]) is int and type(params["flag"]) is int
    with pytest.raises(NotReplayable, match="has no parameter 'drop'"):
        typed_params(space, {**strings, "booster": "dart"})
    with pytest.raises(NotReplayable, match="'flag' = 'yes' is none of its choices"):
        typed_params(space, {**strings, "flag": "yes"})
    assert issubclass(NotReplayable, Exception) and not issubclass(NotReplayable, UserError)
