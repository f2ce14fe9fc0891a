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
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def look_once(folder: Path) -> tuple[float, float, float]:
    """Seconds from the command to its URL line, to the runs table drawn; the server's MB."""
    import psutil
    from playwright.sync_api import sync_playwright

    port = free_port()
    started = time.perf_counter()
    ui = subprocess.Popen(
        [sys.executable, "-m", "hpo.ui", "study=xgb_f1", f"port={port}"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        url_at = time.perf_counter() - started
        if "http" not in line:
            raise SystemExit(f"hpo.ui printed no URL: {line!r}")
        url = line.split(": ", 1)[1].split()[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(url)
            page.get_by_role("columnheader").filter(has_text="f1_std").first.wait_for(
                timeout=120_000
            )
            table_at = time.perf_counter() - started
            browser.close()
        tree = [psutil.Process(ui.pid), *psutil.Process(ui.pid).children(recursive=True)]
        rss = sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20
    finally:
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=60)
    return url_at, table_at, rss


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
