"""The CLI contract of hpo/errors.py: a UserError is one line on stderr and exit status 2;
any other exception keeps its traceback (exit status 1). Both entry points, in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest

import hpo.command as hpo_main
from hpo.check import command as check_command
from hpo.errors import UserError
from objectives.base import BadSetting
from tests.hpo.helpers import PriorObjective, process_state_kept

REPO = Path(__file__).parents[2]


@dataclass
class BuggyObjective(PriorObjective):
    """An objective with a bug: its validate raises something other than BadSetting."""

    def validate(self, values: Any = None) -> None:
        raise ZeroDivisionError("a bug in validate")


@dataclass
class PickyObjective(PriorObjective):
    """An objective that refuses its settings, as objectives do: with a BadSetting."""

    def validate(self, values: Any = None) -> None:
        raise BadSetting("study.objective.depth=0 is too shallow: use depth >= 1")


@pytest.fixture
def argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """sys.argv for one in-process run in tmp_path; what main() and Hydra set for the process
    (the SIGTERM handler, the root logger's handlers, Optuna's verbosity) is undone after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    args = ["hpo"]
    monkeypatch.setattr(sys, "argv", args)
    monkeypatch.setattr(hpo_main, "_failures", [])
    monkeypatch.setattr(check_command, "_outcome", [])
    monkeypatch.setattr(check_command, "_typed", [])
    with process_state_kept():
        yield args


BASE = ["study=tiny_prior", "tracking.enabled=false", "progress=false"]


def test_a_user_error_is_one_line_and_exit_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv.extend([*BASE, "study.metric=f2"])
    with pytest.raises(SystemExit) as done:
        hpo_main.main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown metric 'f2': set study.metric to one of")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_setting_of_an_objective_is_a_user_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """objectives.base.BadSetting, which knows nothing of hpo, reaches the user as one line."""
    argv.extend([*BASE, f"study.objective._target_={__name__}.PickyObjective"])
    with pytest.raises(SystemExit) as done:
        hpo_main.main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: study.objective.depth=0 is too shallow: use depth >= 1\n"


def test_any_other_exception_escapes_main_with_its_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """main() re-raises the exception itself, not a SystemExit: Python prints the traceback,
    down to the line at fault, and exits 1."""
    argv.extend([*BASE, f"study.objective._target_={__name__}.BuggyObjective"])
    with pytest.raises(ZeroDivisionError, match="a bug in validate") as raised:
        hpo_main.main()
    frames = traceback.extract_tb(raised.value.__traceback__)
    assert frames[-1].name == "validate" and frames[-1].filename == __file__
    assert "error:" not in capsys.readouterr().err, "not turned into a one-line error"


def test_hpo_check_turns_a_user_error_into_one_line_and_exit_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv.extend(["study=tiny_prior", "tracking.enabled=false"])
    with pytest.raises(SystemExit) as done:
        check_command.main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: tracking.enabled is false: there is no MLflow experiment to compare\n"


def test_hpo_check_lets_any_other_exception_escape(argv: list[str], tmp_path: Path) -> None:
    """An MLflow store that is not a database is an outage or damage, not the user's typo."""
    journal = tmp_path / "optuna.journal"
    backend = optuna.storages.journal.JournalFileBackend(str(journal))
    optuna.create_study(study_name="s", storage=optuna.storages.JournalStorage(backend))
    (tmp_path / "mlflow.db").write_bytes(b"not a database " * 100)
    argv.extend(
        [
            "study=tiny_prior",
            "study.name=s",
            f"storage.url=journal:{journal}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        ]
    )
    with pytest.raises(Exception) as raised:
        check_command.main()
    assert not isinstance(raised.value, (SystemExit, UserError))
    assert "not a database" in str(raised.value)


def test_the_process_prints_the_traceback_and_exits_1(tmp_path: Path) -> None:
    """The real ``python -m hpo``: what the in-process tests above stand for."""
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "buggy.yaml").write_text(
        "name: buggy\n"
        "objective: {_target_: tests.hpo.test_errors.BuggyObjective}\n"
        "data: breast_cancer\n"
        "cv: {scheme: kfold, n_splits: 2}\n"
        "metric: roc_auc\n"
        "n_trials: 1\n"
        "space:\n"
        "  x: {type: float, low: 0.0, high: 1.0}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "hpo", "study=buggy", "tracking.enabled=false", "progress=false"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last):" in done.stderr
    assert done.stderr.rstrip().endswith("ZeroDivisionError: a bug in validate")
    assert "\nerror: " not in done.stderr
