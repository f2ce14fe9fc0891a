"""Shared by the hpo.ui tests: spare ports, a finished tiny study, and a fake MLflow
tracking server that answers the few REST calls hpo.ui makes."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from hpo.config import Config
from hpo.runner import run
from tests.hpo.runner.helpers import PRIOR

EXPERIMENT_ID = "17"
PARENT_TAGS = {"hpo.role": "study", "hpo.metric": "rmse", "hpo.direction": "minimize"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def study(make_cfg) -> Config:
    """A finished 3-trial study (runs trial-0000..trial-0002) in this test's stores."""
    cfg = make_cfg(*PRIOR, "tracking.writer=inline", "n_jobs=1")
    run(cfg)
    return cfg


class FakeTracking(BaseHTTPRequestHandler):
    """/health, experiments/get-by-name (any name but ``nope``), runs/search (one parent
    run tagged with rmse, minimize); every request path is kept in ``calls``."""

    calls: list[str] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.calls.append(url.path)
        if url.path == "/health":
            self._send(200, "OK", "text/plain")
        elif url.path.endswith("/experiments/get-by-name"):
            name = parse_qs(url.query)["experiment_name"][0]
            if name == "nope":
                self._json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "none"})
                return
            experiment = {"experiment_id": EXPERIMENT_ID, "name": name}
            self._json(200, {"experiment": {**experiment, "lifecycle_stage": "active"}})
        else:
            self._json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": url.path})

    def do_POST(self) -> None:
        url = urlparse(self.path)
        self.calls.append(url.path)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if url.path.endswith("/runs/search"):
            info = {"run_id": "abc", "experiment_id": EXPERIMENT_ID, "status": "FINISHED"}
            tags = [{"key": k, "value": v} for k, v in PARENT_TAGS.items()]
            self._json(200, {"runs": [{"info": info, "data": {"tags": tags}}]})
        elif url.path.endswith("/experiments/search"):
            self._json(200, {"experiments": []})
        else:
            self._json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": url.path})

    def _json(self, status: int, body: object) -> None:
        self._send(status, json.dumps(body), "application/json")

    def _send(self, status: int, body: str, kind: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tracking_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The fake tracking server's URL; MLflow's HTTP settings restored afterwards."""
    for name in ("TIMEOUT", "MAX_RETRIES", "BACKOFF_FACTOR", "BACKOFF_JITTER"):
        monkeypatch.setenv(f"MLFLOW_HTTP_REQUEST_{name}", "1")  # bound_calls sets them
    FakeTracking.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTracking)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# A stand-in for `mlflow server`: answers 200 on argv[1] for argv[2] seconds, then says why
# and exits 1, as a server that dies on its own.
STAND_IN = """
import sys, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer

class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(float(sys.argv[2]))
print("RuntimeError: the stand-in gave up", flush=True)
sys.exit(1)
"""


def stand_in(port: int, lives: float) -> list[str]:
    return [sys.executable, "-c", STAND_IN, str(port), str(lives)]
