"""records: what a trial's run holds, importable without MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[3]


def test_a_worker_with_tracking_off_never_imports_mlflow() -> None:
    code = (
        "import sys, hpo.tracking, hpo.tracking.records, hpo.runner; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'); "
        "assert not loaded, loaded"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
