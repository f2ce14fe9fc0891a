"""The web servers ``python -m hpo.ui`` runs, started, waited for and stopped.

MLflow's own ``mlflow server`` starts four uvicorn workers and a job runner: on
two cores that took 86 s and 3.4 GB before it answered. Looking at one study
needs neither, so it gets one worker and no job execution (10-14 s, 0.5 GB).

Each server runs in a session (process group) of its own: Ctrl-C in the
terminal reaches this command only, and it stops every process of each group
(``mlflow server`` is a launcher whose child is uvicorn; optuna-dashboard may
run gunicorn). On Linux each server is also told to stop should this process
die without stopping it (kill -9), so no server outlives the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import UserError
from hpo.secrets import mask

HOST = "127.0.0.1"  # loopback only: these UIs have no login
STOP_GRACE = 10.0  # seconds a server has to stop on SIGTERM before it is killed
PROGRESS_EVERY = 15.0  # seconds between "still starting" lines
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies

# MLflow 3.x: the job runner (huey consumer) runs GenAI jobs (scorers, trace rollups);
# a study's runs table never starts one.
LIGHT_MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class ServerFailed(Exception):
    """A server that stopped, or never answered, on its own: one line, exit status 1."""


@dataclass
class Server:
    """One running server: its process group, where it answers, and its log file."""

    name: str  # for messages: "the MLflow UI", "optuna-dashboard"
    process: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    ready_path: str  # answers 200 once the server serves pages
    log: Path


def require_free(port: int, key: str) -> None:
    """Refuse a port something already listens on, before anything starts: the new server
    would die after seconds of start-up, and the URL would show the other one. SO_REUSEADDR,
    as the servers bind: a port a stopped server left in TIME_WAIT is free to them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            raise UserError(
                f"port {port} on {HOST} is in use (another UI still running?): "
                f"give another, e.g. {key}={port + 1}"
            ) from None


def mlflow_command(port: int, artifacts: str | None) -> list[str]:
    """``mlflow server`` with one uvicorn worker on loopback. The store URI goes in the
    environment (``mlflow_env``): a password in it would show in ``ps`` otherwise."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port)]
    command += ["--workers", "1"]
    if artifacts:  # new experiments, and proxied artifacts, where the study put its own
        command += ["--default-artifact-root", artifacts, "--artifacts-destination", artifacts]
    return command


def mlflow_env(store_uri: str) -> dict[str, str]:
    """The environment for ``mlflow_command``: the store, and no job execution."""
    return {**os.environ, **LIGHT_MLFLOW_ENV, "MLFLOW_BACKEND_STORE_URI": store_uri}


def dashboard_executable() -> str | None:
    """The ``optuna-dashboard`` script: beside this Python first (a venv used without being
    activated), then on PATH; None when the package is not installed."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("optuna-dashboard", path=path)


def dashboard_command(executable: str, storage: str, port: int, folder: Path) -> list[str]:
    """optuna-dashboard on ``storage`` (as ``hpo.storages.optuna_url`` gives it: a journal's
    path, a database URL). A URL with a password goes in a config file only this user can
    read instead of on the command line, where ``ps`` would show it."""
    command = [executable, "--host", HOST, "--port", str(port), "--quiet"]
    if mask(storage) == storage:
        return [*command, storage]
    config = folder / "optuna-dashboard.toml"
    config.touch(mode=0o600)
    config.write_text(f"[optuna_dashboard]\nstorage = {_toml_string(storage)}\n")
    return [*command, "--from-config", str(config)]


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def start(
    name: str,
    slug: str,
    command: Sequence[str],
    port: int,
    ready_path: str,
    env: dict[str, str] | None = None,
) -> Server:
    """Start ``command`` in a session of its own, its output in a log file
    (``hpo-ui-SLUG-*.log`` in the temp folder): the terminal keeps the URL lines, and a
    failure quotes the log."""
    fd, log = tempfile.mkstemp(prefix=f"hpo-ui-{slug}-", suffix=".log")
    with os.fdopen(fd, "wb") as out:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_stop_with_parent(),
        )
    return Server(name, process, f"http://{HOST}:{port}", ready_path, Path(log))


def _stop_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the server when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def hook() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200. No proxy: an http_proxy setting must not take
    loopback requests elsewhere."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_ready(
    server: Server,
    timeout: float,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Poll the server until it answers; the seconds it took. It stopping first, or not
    answering within ``timeout``, is ServerFailed. A line every PROGRESS_EVERY seconds
    tells a person at the terminal that it is still coming."""
    started = clock()
    told = started
    while True:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"{server.name} stopped before it answered (exit status "
                f"{server.process.returncode}): {last_line(server.log)} (its log: {server.log})"
            )
        if answers(server.base + server.ready_path):
            return clock() - started
        now = clock()
        if now - started > timeout:
            raise ServerFailed(
                f"{server.name} did not answer within {timeout:.0f} s: give it longer with "
                f"start_timeout=, or read its log: {server.log}"
            )
        if now - told >= PROGRESS_EVERY:
            say(f"still waiting for {server.name} ({now - started:.0f} s)...")
            told = now
        time.sleep(0.25)


def watch(servers: Sequence[Server], poll: float = 0.5) -> Server:
    """Block until one of ``servers`` stops on its own (Ctrl-C raises KeyboardInterrupt
    here); that server."""
    while True:
        for server in servers:
            if server.process.poll() is not None:
                return server
        time.sleep(poll)


def stopped_line(server: Server) -> str:
    """Why a running server is gone, for the error line."""
    status = server.process.returncode
    why = last_line(server.log)
    return f"{server.name} stopped (exit status {status}): {why} (its log: {server.log})"


def stop(servers: Sequence[Server], keep_logs: bool = False, grace: float = STOP_GRACE) -> None:
    """SIGTERM every process group, wait up to ``grace`` seconds, SIGKILL what is left;
    the logs are deleted unless ``keep_logs`` (a failure's message names them).

    Ctrl-C and SIGTERM are ignored meanwhile: a second Ctrl-C must not cut the clean-up
    short and leave a server behind."""
    with _signals_ignored():
        for server in servers:
            _signal_group(server, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for server in servers:
            while _group_alive(server) and time.monotonic() < deadline:
                server.process.poll()  # reap the leader, so that its group can empty
                time.sleep(0.1)
            if _group_alive(server):
                _signal_group(server, signal.SIGKILL)
            server.process.wait()
            if not keep_logs:
                server.log.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _signal_group(server: Server, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, sig)


def _group_alive(server: Server) -> bool:
    server.process.poll()
    try:
        os.killpg(server.process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_line(log: Path) -> str:
    """The last non-empty line of a server's log (an exception's message, usually)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no log"
    found = [line for line in lines if line]
    return mask(found[-1][:300]) if found else "no output"
