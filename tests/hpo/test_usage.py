"""python -m hpo --help from file names (hpo/usage.py): the same groups as Hydra's help,
without importing Hydra or Optuna."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpo import usage

REPO = Path(__file__).parents[2]


def test_only_a_bare_help_skips_hydra() -> None:
    assert usage.wanted(["--help"]) and usage.wanted(["-h"])
    assert not usage.wanted(["study=xgb_f1", "--help"]), "a study's help shows its config"
    assert not usage.wanted([]) and not usage.wanted(["--hydra-help"])
    assert usage.with_overrides(["study=xgb_f1", "-h"]) and not usage.with_overrides(["-h"])
    assert usage.as_cfg_job(["study=xgb_f1", "--help", "seed=1"]) == [
        "study=xgb_f1",
        "seed=1",
        "--cfg",
        "job",
    ]


def test_a_study_in_another_folder_is_listed(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_study.yaml").write_text("name: my_study\n")
    monkeypatch.setenv("HPO_STUDIES_DIR", str(tmp_path))
    assert "my_study" in usage.groups()["study"]
    assert "xgb_f1" in usage.groups()["study"]


@pytest.mark.slow
def test_the_groups_are_hydra_s_and_neither_hydra_nor_optuna_is_imported() -> None:
    heavy = "hydra", "omegaconf", "optuna", "mlflow"
    probe = (
        "import runpy, sys; sys.argv = ['hpo', '--help']; runpy.run_module('hpo', "
        f"run_name='__main__'); print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    fast = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout.rstrip().endswith("[]"), "nothing heavy imported"
    hydra_help = "import sys; sys.argv = ['hpo', '--help']; from hpo.command import main; main()"
    hydra = subprocess.run(
        [sys.executable, "-c", hydra_help], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert hydra.returncode == 0, hydra.stderr
    assert "== Composed config for these overrides ==" in hydra.stdout, "Hydra's own help"
    assert _groups(fast.stdout) == _groups(hydra.stdout)
    assert any(line.startswith("study: ") for line in _groups(fast.stdout))


def test_help_with_overrides_adds_their_composed_config() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hpo", "study=xgb_rmse", "sampler=cmaes", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    page, config = done.stdout.split(usage.COMPOSED + "\n")
    assert _groups(page) == _groups(usage.text())
    assert "name: xgb_rmse" in config and "_target_: optuna.samplers.CmaEsSampler" in config


def _groups(page: str) -> list[str]:
    """The lines under '== Studies and options' up to the next blank line."""
    lines = page.splitlines()
    start = lines.index("== Studies and options (GROUP=OPTION) ==") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start:end]
