"""python -m hpo.check: the report, exit statuses 1 then 0 after repair=true, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo.check import open_check
from hpo.config import Config
from hpo.errors import UserError
from hpo.names import RUN_ATTR
from tests.hpo.check.conftest import REPO, TWO_STATES, client, trials


def test_an_unknown_study_is_a_user_error(make_cfg, cfg: Config) -> None:
    other = make_cfg(*TWO_STATES)
    other.storage = cfg.storage
    with pytest.raises(UserError, match=r"no study 'tiny_prior-\w+' in .* \(it has: tiny_prior-"):
        open_check(other)


@pytest.mark.slow
def test_the_command_reports_then_repairs_with_exit_status_1_then_0(cfg: Config) -> None:
    trial = trials(cfg)[TrialState.COMPLETE]
    client(cfg).update_run(trial.user_attrs[RUN_ATTR], status="RUNNING")
    args = [
        "study=xgb_f1",  # any study: the name, storage and tracking are what count
        f"study.name={cfg.study.name}",
        f"storage.url={cfg.storage.url}",
        f"tracking.uri={cfg.tracking.uri}",
    ]

    def hpo_check(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hpo.check", *args, *extra]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    report = hpo_check()
    assert report.returncode == 1, report.stderr
    assert "stale RUNNING run" in report.stdout and "repair=true" in report.stdout
    fixed = hpo_check("repair=true")
    assert fixed.returncode == 0, fixed.stderr
    assert "repaired 1 mismatches" in fixed.stdout
    unknown = hpo_check("study.name=nope")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: no study 'nope'") and "Traceback" not in unknown.stderr
    assert not Path("outputs").exists(), "a check writes no Hydra output folder"
