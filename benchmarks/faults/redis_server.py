"""A private redis-server on a spare port, for faults that kill or restart Redis.

The shared Redis belongs to everyone running tests on this machine: a row
that killed it would fail their runs. This server listens on 127.0.0.1 and a
spare port, keeps whatever it keeps in a temporary directory, and is killed
and removed when the ``redis_server()`` block ends, whatever happened inside.

By default it keeps nothing on disk (``--save "" --appendonly no``): a
restart would come back empty. ``durable=True`` is how a deployment that
holds Optuna's journal in Redis must run it: an append-only file fsynced on
every write (``appendfsync always``), so that even after SIGKILL the server
comes back with every write it acknowledged.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from benchmarks.faults.cluster import spare_port

START_TIMEOUT = 30.0  # seconds to wait for PING (loading a long append-only file)


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, its files (log, append-only file) under ``root``."""

    def __init__(self, root: Path, port: int, durable: bool) -> None:
        self.root = root
        self.port = port
        self.durable = durable
        self.log = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        keep = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else []
        return [
            str(_binary()),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            *keep,  # later options win over the earlier --appendonly no
        ]

    def start(self) -> None:
        """Start the server and return once it answers PING (its data loaded)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """``sig`` to the server (SIGKILL: a crash, nothing flushed), and wait for it to end."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """A crash and a respawn, as a supervisor would: SIGKILL, then the same server again."""
        self.kill(signal.SIGKILL)
        self.start()

    def ready(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:  # not listening yet, or still loading its data (BUSY/LOADING)
            return False
        finally:
            client.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server on port {self.port} did not come up:\n{tail}")


@contextlib.contextmanager
def redis_server(durable: bool = False) -> Iterator[RedisServer]:
    """A running private server; killed and its directory removed on the way out."""
    root = Path(tempfile.mkdtemp(prefix="hpo-faults-redis-"))
    server = RedisServer(root, spare_port(), durable)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


def unavailable() -> str | None:
    """Why no private server can be started here (no redis-server binary), or None."""
    try:
        _binary()
    except FileNotFoundError as err:
        return str(err)
    return None


def _binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError("no redis-server on PATH: install Redis's server package")
    return found
