"""hpo.ui's servers: the light MLflow command, optuna-dashboard's storage argument, and
servers started, waited for and stopped with every process of their group."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hpo.errors import UserError
from hpo.ui import servers
from hpo.ui.servers import ServerFailed
from tests.hpo.ui.conftest import free_port

# An HTTP server on argv[1] that first starts a child of its own (as `mlflow server` starts
# uvicorn), so that stopping only the process we started would leave one behind.
WITH_CHILD = f"""
import subprocess, sys
from http.server import HTTPServer, SimpleHTTPRequestHandler
subprocess.Popen([{sys.executable!r}, "-c", "import time; time.sleep(120)"])
HTTPServer(("127.0.0.1", int(sys.argv[1])), SimpleHTTPRequestHandler).serve_forever()
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_busy_port_is_refused_naming_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as err:
            servers.require_free(port, "port")
    assert str(err.value) == (
        f"port {port} on 127.0.0.1 is in use (another UI still running?): "
        f"give another, e.g. port={port + 1}"
    )
    servers.require_free(port, "port")  # free again


def test_mlflow_runs_one_worker_on_loopback_without_jobs() -> None:
    command = servers.mlflow_command(5001, "/data/mlartifacts")
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "5001"
    assert command[command.index("--default-artifact-root") + 1] == "/data/mlartifacts"
    assert command[command.index("--artifacts-destination") + 1] == "/data/mlartifacts"
    env = servers.mlflow_env("postgresql://u:hunter2@h/mlflow")
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_BACKEND_STORE_URI"] == "postgresql://u:hunter2@h/mlflow"
    assert "--backend-store-uri" not in command, "the store goes in the environment, not ps"


def test_mlflow_decides_artifacts_when_the_study_did_not() -> None:
    assert "--default-artifact-root" not in servers.mlflow_command(5001, None)


def test_optuna_dashboard_takes_a_journal_path_on_its_command_line(tmp_path: Path) -> None:
    command = servers.dashboard_command("optuna-dashboard", "optuna.journal", 8081, tmp_path)
    assert command == [
        "optuna-dashboard",
        "--host",
        "127.0.0.1",
        "--port",
        "8081",
        "--quiet",
        "optuna.journal",
    ]


def test_a_password_goes_to_optuna_dashboard_in_a_private_file(tmp_path: Path) -> None:
    url = 'postgresql+psycopg://u:hun"ter2@h/db'
    command = servers.dashboard_command("optuna-dashboard", url, 8081, tmp_path)
    assert not any("hun" in arg for arg in command)
    config = Path(command[command.index("--from-config") + 1])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    import tomllib

    assert tomllib.loads(config.read_text()) == {"optuna_dashboard": {"storage": url}}


def test_a_server_answers_then_stops_with_its_whole_group() -> None:
    port = free_port()
    server = servers.start("the test server", "test", python(WITH_CHILD, str(port)), port, "/")
    try:
        took = servers.wait_ready(server, 30, print)
        assert took >= 0 and servers.answers(f"http://127.0.0.1:{port}/")
        group = [
            server.process.pid,
            *(c.pid for c in psutil.Process(server.process.pid).children()),
        ]
        assert len(group) == 2, "the server's own child runs too"
        assert os.getpgid(server.process.pid) == server.process.pid, "a session of its own"
    finally:
        servers.stop([server])
    assert until(lambda: all(gone(pid) for pid in group))
    assert not server.log.exists(), "a clean stop leaves no log"
    servers.require_free(port, "port")


def test_a_server_that_exits_first_is_one_line_quoting_its_log() -> None:
    code = "import sys; print('Traceback ...'); print('ValueError: bad store'); sys.exit(3)"
    server = servers.start("the test server", "test", python(code), free_port(), "/")
    with pytest.raises(ServerFailed) as err:
        servers.wait_ready(server, 30, print)
    servers.stop([server], keep_logs=True)
    assert str(err.value) == (
        f"the test server stopped before it answered (exit status 3): ValueError: bad store "
        f"(its log: {server.log})"
    )
    assert server.log.exists()
    server.log.unlink()


def test_a_server_that_never_answers_times_out_with_progress_lines(monkeypatch) -> None:
    monkeypatch.setattr(servers, "PROGRESS_EVERY", 0.2)
    said: list[str] = []
    sleeper = python("import time; time.sleep(60)")
    server = servers.start("the test server", "test", sleeper, free_port(), "/")
    try:
        with pytest.raises(ServerFailed, match=r"did not answer within 1 s: .*start_timeout="):
            servers.wait_ready(server, 1.0, said.append)
    finally:
        servers.stop([server])
    assert said and said[0].startswith("still waiting for the test server (")


def test_a_server_ignoring_sigterm_is_killed_after_the_grace() -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    server = servers.start("the test server", "test", python(stubborn), free_port(), "/")
    time.sleep(0.5)  # let it install its handler
    started = time.monotonic()
    servers.stop([server], grace=1.0)
    assert server.process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_watch_returns_the_server_that_stopped() -> None:
    quick = servers.start("quick", "test", python("pass"), free_port(), "/")
    slow = servers.start("slow", "test", python("import time; time.sleep(60)"), free_port(), "/")
    try:
        assert servers.watch([slow, quick], poll=0.05) is quick
        assert servers.stopped_line(quick) == (
            f"quick stopped (exit status 0): no output (its log: {quick.log})"
        )
    finally:
        servers.stop([quick, slow])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_server_stops_when_its_starter_is_killed() -> None:
    """kill -9 of hpo.ui runs no clean-up: the kernel's parent-death signal stops the
    server all the same."""
    starter = (
        "import sys, time\n"
        "from hpo.ui import servers\n"
        "s = servers.start('x', 'test', [sys.executable, '-c', 'import time; time.sleep(120)'],"
        " 1, '/')\n"
        "print(s.process.pid, s.log, flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    parent = subprocess.Popen(python(starter), stdout=subprocess.PIPE, text=True, env=env)
    assert parent.stdout is not None
    pid, log = parent.stdout.readline().split()
    assert not gone(int(pid))
    parent.kill()
    parent.wait()
    assert until(lambda: gone(int(pid))), "the server outlived its starter"
    Path(log).unlink()  # nobody was left to clean up
