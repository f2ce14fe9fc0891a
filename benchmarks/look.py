"""How long a user waits to see a study: ``python -m hpo.ui`` until its URL line, and until
the runs table (with the metric column) is drawn in headless Chromium.

    python -m benchmarks.look                   # a fresh xgb_f1 study of 10 trials, 3 looks
    python -m benchmarks.look --trials 50 --repeats 5
    python -m benchmarks.look --folder DIR      # look at the study already in DIR

Issue 13's target: from an empty folder, ``python -m hpo study=xgb_f1`` then the
look command shows the runs table in under 20 s. A plain ``mlflow ui`` (four
uvicorn workers and a job runner) took 86 s here; the column shows both, measured
side by side. Needs Debian's chromium and Playwright (.[dev]).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks.common import load, revision, table

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_study(folder: Path, trials: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "hpo", "study=xgb_f1", f"study.n_trials={trials}", "progress=false"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the study failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


@dataclass
class Look:
    """An ``hpo.ui`` being looked at: Chromium's page at its URL, and when it all began."""

    page: Any
    ui: subprocess.Popen[str]
    started: float  # time.perf_counter() just before the command
    url_at: float  # seconds from the command to its URL line


@contextlib.contextmanager
def ui_page(
    argv: list[str], folder: Path, log: IO[str] | int = subprocess.DEVNULL
) -> Iterator[Look]:
    """``python -m hpo.ui ARGV`` in ``folder`` (on a free port), its URL open in headless
    Chromium; the command stopped after (``stop_ui``). ``log``: where its stderr goes."""
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    ui = subprocess.Popen(
        [sys.executable, "-m", "hpo.ui", *argv, f"port={free_port()}"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,  # its MLflow server too can be stopped as one group
    )
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        url_at = time.perf_counter() - started
        if "http" not in line:
            raise RuntimeError(f"hpo.ui printed no URL: {line!r}")
        url = line.split(": ", 1)[1].split()[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(url, timeout=180_000)  # MLflow's 20 MB of JavaScript, on a busy machine
            yield Look(page, ui, started, url_at)
            browser.close()
    finally:
        stop_ui(ui)


def stop_ui(ui: subprocess.Popen[str]) -> None:
    """SIGTERM for the look command, which stops its MLflow server as Ctrl-C does (SIGINT
    would be ignored: a shell starts a background job, nohup, with SIGINT ignored, and
    its children inherit that); SIGKILL to its process group if it has not ended in a
    minute."""
    ui.send_signal(signal.SIGTERM)
    try:
        ui.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(ui.pid, signal.SIGKILL)
        ui.wait(timeout=10)


def look_once(folder: Path) -> tuple[float, float, float]:
    """Seconds from the command to its URL line, to the runs table drawn; the server's MB."""
    import psutil

    with ui_page(["study=xgb_f1"], folder) as look:
        column = look.page.get_by_role("columnheader").filter(has_text="f1_std")
        column.first.wait_for(timeout=120_000)
        table_at = time.perf_counter() - look.started
        tree = [psutil.Process(look.ui.pid), *psutil.Process(look.ui.pid).children(recursive=True)]
        rss = sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20
    return look.url_at, table_at, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, help="a folder holding a finished xgb_f1 study")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="hpo-look-"))
    rows = []
    if args.folder is None:
        seconds = run_study(folder, args.trials)
        rows.append(["python -m hpo study=xgb_f1", f"{args.trials} trials", f"{seconds:.1f}", ""])
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    for repeat in range(args.repeats):
        url_at, table_at, rss = look_once(folder)
        rows.append([f"python -m hpo.ui (look {repeat + 1})", "URL line", f"{url_at:.1f}", ""])
        rows.append(["", "runs table drawn", f"{table_at:.1f}", f"{rss:.0f}"])
    print(f"revision {revision()}, load {load()}")
    print(table(["command", "until", "seconds", "MB resident"], rows, right={2, 3}))
    print(f"folder: {folder}")


if __name__ == "__main__":
    main()
