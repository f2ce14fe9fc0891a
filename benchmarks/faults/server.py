"""An MLflow tracking server on loopback that a fault row may stop and start again.

Workers on many machines log through ``mlflow server``; "the tracking server
is down for a while" is then a real fault. The server keeps its SQLite store
and artifacts in a temporary directory and comes back on the same port with
the same data, as a restarted server would. ``start`` returns once /health
answers, so a row never races the server's start-up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from benchmarks.faults.cluster import spare_port

START_TIMEOUT = 90.0  # seconds to wait for /health (the first start creates the tables)


class TrackingServer:
    """``mlflow server`` on 127.0.0.1:``port``, its store and artifacts under ``root``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_healthy()

    def stop(self) -> None:
        """End the server and every process it started (its own session), and wait for it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.2)
        tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"mlflow server on port {self.port} did not come up:\n{tail}")


@contextlib.contextmanager
def tracking_server() -> Iterator[TrackingServer]:
    """A running tracking server; stopped and its directory removed on the way out."""
    root = Path(tempfile.mkdtemp(prefix="hpo-faults-mlflow-"))
    server = TrackingServer(root, spare_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
