"""A private PostgreSQL cluster on a spare port, for faults that restart or kill the database.

The shared test server belongs to everyone running tests on this machine: a
fault row that restarted it would fail their runs. This cluster lives in a
temporary directory, listens on 127.0.0.1 and a socket of its own, trusts
every local connection, and is stopped and removed when the ``cluster()``
block ends, whatever happened inside it. The server runs as the ``postgres``
OS user when we are root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

SUPERUSER = "postgres"
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections


class Cluster:
    """One initdb'd data directory and the server on it: start, stop, restart, kill sessions."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "server.log"

    # --- the server process ----------------------------------------------------

    def init(self) -> None:
        """Create the data directory: trust authentication, UTF-8, no fsync (scratch data)."""
        self.sockets.mkdir()
        _give_to_postgres(self.root)
        self._run(
            _binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        self._ctl("start", "-l", str(self.log), "-o", self._options())

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        """A fast restart, as an operator (or a crashed and respawned server) would do it:
        every session is ended, the server is unreachable for a moment, then back."""
        self._ctl("restart", "-m", "fast", "-l", str(self.log), "-o", self._options())

    def running(self) -> bool:
        done = subprocess.run(
            [*_as_postgres(), _binary("pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def _options(self) -> str:
        where = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1"
        return f"{where} -c fsync=off -c timezone=UTC"  # UTC: heartbeats compare with starts

    def _ctl(self, *args: str) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-w", "-t", str(START_TIMEOUT), *args)

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*_as_postgres(), *command], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}\n{tail}")

    # --- databases and sessions -------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """The URL hpo takes (``storage.url=``); psycopg 3 is chosen by hpo itself."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url(), autocommit=True, connect_timeout=10)

    def create_database(self, prefix: str = "faults") -> str:
        """A new, empty database: its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def kill_connections(self, pattern: str) -> int:
        """End every session on a database whose name is LIKE ``pattern`` (pg_terminate_backend,
        as an operator or a failover does): how many were ended."""
        with self.admin() as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname LIKE %s AND pid <> pg_backend_pid()",
                (pattern,),
            ).fetchall()
        return sum(1 for (ended,) in rows if ended)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A running private cluster; stopped and its directory removed on the way out."""
    root = Path(tempfile.mkdtemp(prefix="hpo-faults-pg-"))
    made = Cluster(root, spare_port())
    try:
        made.init()
        made.start()
        yield made
    finally:
        with contextlib.suppress(Exception):
            if made.running():
                made.stop()
        shutil.rmtree(root, ignore_errors=True)


def unavailable() -> str | None:
    """Why no private cluster can be started here (no server binaries, no postgres user), or
    None when one can."""
    try:
        _binary("initdb")
        _binary("pg_ctl")
    except FileNotFoundError as err:
        return str(err)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return f"running as root without a {SUPERUSER} OS user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to start the server as postgres"
    return None


def spare_port() -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary(name: str) -> str:
    """``initdb`` or ``pg_ctl``: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3])
    )
    if not candidates:
        raise FileNotFoundError(f"no {name}: install PostgreSQL's server package")
    return str(candidates[-1])


def _as_postgres() -> list[str]:
    """The prefix that runs a command as the postgres OS user (nothing unless we are root)."""
    return ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []


def _give_to_postgres(root: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(SUPERUSER)
    for path in (root, *root.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)
