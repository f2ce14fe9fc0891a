"""Start-up: how long hpo's commands take before they do anything, against the imports
every Optuna + Hydra program pays, measured side by side in one run.

    python -m benchmarks.startup                 # 5 repeats, interleaved
    python -m benchmarks.startup --repeats 9

Rows: ``python -c "import optuna, hydra"`` (the floor), ``python -m hpo --help`` (a bare
help, from file names), ``study=xgb_f1 --help`` (Hydra's help with the composed config),
``--cfg job``, a user error (an unknown study: one line, exit 2), and the first trial of
``xgb_f1``: seconds from the command to the trial's start as Optuna recorded it. Issue 15's
targets: --help under 1 s, the first trial within 4 s; --cfg job and errors as fast.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.common import load, revision, table

PY = sys.executable
COMMANDS = {
    "import optuna, hydra (floor)": [PY, "-c", "import optuna, hydra"],
    "python -m hpo --help": [PY, "-m", "hpo", "--help"],
    "python -m hpo study=xgb_f1 --help": [PY, "-m", "hpo", "study=xgb_f1", "--help"],
    "python -m hpo study=xgb_f1 --cfg job": [PY, "-m", "hpo", "study=xgb_f1", "--cfg", "job"],
    "python -m hpo study=nope (user error)": [PY, "-m", "hpo", "study=nope"],
}
FIRST_TRIAL = "first trial of study=xgb_f1 started"


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started


def first_trial(cwd: Path) -> float:
    """Seconds from the command to its first trial's datetime_start (Optuna's record)."""
    import optuna

    for stale in cwd.glob("optuna.journal*"):
        stale.unlink()
    started = datetime.now()
    subprocess.run(
        [PY, "-m", "hpo", "study=xgb_f1", "study.n_trials=1", "tracking.enabled=false"],
        cwd=cwd,
        capture_output=True,
        check=True,
    )
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(cwd / "optuna.journal"))
    )
    trial = optuna.load_study(study_name="xgb_f1", storage=storage).trials[0]
    assert trial.datetime_start is not None
    return (trial.datetime_start - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cwd = Path(tempfile.mkdtemp(prefix="hpo-startup-"))
    seconds: dict[str, list[float]] = {name: [] for name in [*COMMANDS, FIRST_TRIAL]}
    for _ in range(args.repeats):  # interleaved: a noisy minute hits every row alike
        for name, command in COMMANDS.items():
            seconds[name].append(timed(command, cwd))
        seconds[FIRST_TRIAL].append(first_trial(cwd))
    floor = statistics.median(seconds[next(iter(COMMANDS))])
    rows = []
    for name, values in seconds.items():
        median = statistics.median(values)
        spread = f"{min(values):.2f}-{max(values):.2f}"
        rows.append([name, f"{median:.2f}", spread, f"{median / floor:.1f}x"])
    print(f"revision {revision()}, load {load()}, {args.repeats} repeats, median seconds")
    print(table(["command", "seconds", "range", "vs floor"], rows, right={1, 2, 3}))


if __name__ == "__main__":
    main()
