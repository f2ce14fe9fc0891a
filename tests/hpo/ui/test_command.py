"""python -m hpo.ui: the URL line, nothing started for a tracking server, one-line errors,
a clean stop on Ctrl-C or SIGTERM, and (in a real browser) the runs table it lands on."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import psutil
import pytest

from hpo.config import Config
from hpo.errors import UserError
from hpo.ui import command, servers
from hpo.ui.command import UiConfig, look, rerun_command
from hpo.ui.servers import Server, ServerFailed
from tests.hpo.ui.conftest import EXPERIMENT_ID, FakeTracking, free_port, stand_in

REPO = Path(__file__).parents[3]
URL_LINE = re.compile(r"^MLflow UI for study (\S+): (\S+)")


def ui_config(cfg: Config, **ui: object) -> UiConfig:
    """``cfg`` (from make_cfg) with the UI's keys, as python -m hpo.ui composes it."""
    return UiConfig(**{f.name: getattr(cfg, f.name) for f in fields(Config)}, **ui)  # type: ignore[arg-type]


def test_the_rerun_hint_is_the_study_command_without_the_ui_s_keys() -> None:
    argv = ["study=xgb_f1", "--dashboard", "port=5001", "storage.url=postgresql://u:pw@h/db"]
    assert rerun_command(argv) == "python -m hpo study=xgb_f1 storage.url=postgresql://u:***@h/db"


def test_a_tracking_server_is_only_linked_nothing_starts(
    make_cfg, tracking_server: str, monkeypatch, capsys
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a server was started for a tracking server")

    monkeypatch.setattr(servers, "start", never)
    cfg = make_cfg("study=xgb_f1", f"tracking.uri={tracking_server}", name="xgb_f1")
    assert look(ui_config(cfg), "python -m hpo") == 0
    out = capsys.readouterr().out
    assert out == (
        f"MLflow UI for study xgb_f1: {tracking_server}/#/experiments/{EXPERIMENT_ID}/runs"
        "?workflowType=machine_learning&orderByKey=metrics.%60rmse%60&orderByAsc=true\n"
    )
    assert "/health" in FakeTracking.calls


def test_without_optuna_dashboard_one_line_says_how_to_install_it(
    study: Config, tracking_server: str, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(servers, "dashboard_executable", lambda: None)
    study.tracking.uri = tracking_server
    assert look(ui_config(study, dashboard=True), "python -m hpo") == 0
    captured = capsys.readouterr()
    assert captured.err == "optuna-dashboard is not installed: pip install optuna-dashboard\n"
    assert captured.out.startswith(f"MLflow UI for study {study.study.name}: {tracking_server}/")


def test_tracking_off_has_no_experiment_to_show(make_cfg) -> None:
    cfg = make_cfg("study=xgb_f1", "tracking.enabled=false")
    with pytest.raises(UserError, match=r"^tracking.enabled is false: .*--dashboard"):
        look(ui_config(cfg), "python -m hpo")


def test_a_busy_port_is_refused_before_anything_starts(study: Config, monkeypatch) -> None:
    monkeypatch.setattr(command.servers, "start", None)  # never reached
    with servers.socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=rf"^port {port} on 127.0.0.1 is in use"):
            look(ui_config(study, port=port), "python -m hpo")


class UI:
    """``python -m hpo.ui`` in a subprocess, its output lines read as they come."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hpo.ui", *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stdout, self.out.put)).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.err.append)).start()

    @staticmethod
    def _read(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def line(self, timeout: float = 240) -> str:
        """The next stdout line (its URL line), waited for up to ``timeout`` seconds."""
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            raise AssertionError("no line from hpo.ui: " + "\n".join(self.err)) from None

    def said(self, start: str, timeout: float = 240) -> None:
        """Wait until a stderr line starts with ``start``."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith(start) for line in self.err):
            assert self.process.poll() is None, "\n".join(self.err)
            assert time.monotonic() < deadline, f"no '{start}' line: " + "\n".join(self.err)
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Send ``sig``; the exit status, and every process it started gone."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(sig)
        status = self.process.wait(timeout=60)
        psutil.wait_procs(children, timeout=10)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left behind: {alive}"
        return status


def stores(cfg: Config) -> list[str]:
    """The overrides that point python -m hpo.ui at ``cfg``'s study (any study= will do)."""
    return [
        "study=xgb_f1",
        f"study.name={cfg.study.name}",
        f"storage.url={cfg.storage.url}",
        f"tracking.uri={cfg.tracking.uri}",
    ]


@pytest.mark.slow
def test_errors_are_one_line_with_status_2(tmp_path: Path) -> None:
    missing = UI("study=xgb_f1", f"tracking.uri=sqlite:///{tmp_path}/none.db", cwd=tmp_path)
    assert missing.process.wait(timeout=120) == 2
    assert missing.err == [
        f"error: no MLflow store at {tmp_path}/none.db: run the study first (python -m hpo "
        f"study=xgb_f1 tracking.uri=sqlite:///{tmp_path}/none.db) or give tracking.uri= "
        "(the store it logged to)"
    ]
    typo = UI("study=xgb_f1", "prot=5001", cwd=tmp_path)
    assert typo.process.wait(timeout=120) == 2
    assert len(typo.err) == 1 and typo.err[0].startswith("error: ")
    assert not (tmp_path / "outputs").exists(), "hpo.ui writes no Hydra output folder"


@pytest.mark.slow
def test_sigterm_while_starting_stops_the_server_with_status_0(study: Config, tmp_path) -> None:
    ui = UI(*stores(study), f"port={free_port()}", cwd=tmp_path)
    ui.said("starting the MLflow UI")
    assert ui.stop(signal.SIGTERM) == 0
    assert ui.err[-1] == "stopping the MLflow UI"


@pytest.mark.slow
def test_dashboard_shows_the_optuna_study_beside_mlflow(study: Config, tmp_path: Path) -> None:
    if servers.dashboard_executable() is None:
        pytest.skip("optuna-dashboard is not installed (pip install optuna-dashboard)")
    port, dashboard_port = free_port(), free_port()
    ports = [f"port={port}", f"dashboard_port={dashboard_port}"]
    ui = UI(*stores(study), *ports, "--dashboard", cwd=tmp_path)
    assert URL_LINE.match(ui.line()), ui.err
    line = ui.line()
    assert line == (
        f"optuna-dashboard for study {study.study.name}: "
        f"http://127.0.0.1:{dashboard_port}/dashboard/studies/0  (Ctrl-C stops both)"
    )
    try:
        api = f"http://127.0.0.1:{dashboard_port}/api/studies"
        with servers.urllib.request.urlopen(api, timeout=10) as response:
            assert study.study.name in response.read().decode()
    finally:
        assert ui.stop(signal.SIGINT) == 0
    servers.require_free(port, "port")
    servers.require_free(dashboard_port, "dashboard_port")


def test_a_server_that_dies_is_one_line_and_its_log_is_kept(
    study: Config, monkeypatch, capsys
) -> None:
    port = free_port()
    monkeypatch.setattr(servers, "mlflow_command", lambda *args: stand_in(port, 1.0))
    with pytest.raises(ServerFailed) as err:
        look(ui_config(study, port=port), "python -m hpo")
    line = str(err.value)
    assert line.startswith("the MLflow UI stopped (exit status 1): RuntimeError: the stand-in")
    log = Path(line.split("(its log: ")[1].rstrip(")"))
    assert log.exists()
    log.unlink()
    assert capsys.readouterr().out.startswith(f"MLflow UI for study {study.study.name}: ")


def test_ctrl_c_stops_the_server_and_returns_0(study: Config, monkeypatch, capsys) -> None:
    port = free_port()
    monkeypatch.setattr(servers, "mlflow_command", lambda *args: stand_in(port, 60))
    watched: list[Server] = []

    def interrupted(running: list[Server], poll: float = 0.5) -> Server:
        watched.extend(running)
        raise KeyboardInterrupt

    monkeypatch.setattr(servers, "watch", interrupted)
    assert look(ui_config(study, port=port), "python -m hpo") == 0
    assert capsys.readouterr().err.endswith("stopping the MLflow UI\n")
    assert [server.process.poll() for server in watched] == [-signal.SIGTERM]
    assert not watched[0].log.exists()
    servers.require_free(port, "port")
