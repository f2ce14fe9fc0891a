"""hpo/failpoints.py: a process dies by SIGKILL at the step HPO_FAILPOINT names, and only there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hpo.failpoints import NIGHT_STEPS

REPO = Path(__file__).parents[2]
CALL = "from hpo import failpoints; failpoints.reached('x'); print('went on')"


def reach_x(failpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HPO_FAILPOINT": failpoint}
    return subprocess.run(
        [sys.executable, "-c", CALL], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_named_step_kills_the_process_at_once() -> None:
    done = reach_x("x")
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "went on" not in done.stdout


@pytest.mark.parametrize("failpoint", ["y", ""])
def test_another_step_goes_on(failpoint: str) -> None:
    done = reach_x(failpoint)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "went on"


def test_every_night_step_is_reached_in_the_code() -> None:
    """A step renamed in one place only would never fire: the matrix row would test nothing."""
    code = "".join(p.read_text() for p in (REPO / "hpo").rglob("*.py"))
    for step in NIGHT_STEPS:
        assert f'failpoints.reached("{step}")' in code, step
