"""A private PostgreSQL server for the tests: real binaries, a temporary data folder, a free
loopback port, trust authentication, ``fsync`` on (the tests prove durability).

The binaries come from Debian's ``postgresql`` package (installed with ``apt-get`` when no
``initdb`` is found under ``/usr/lib/postgresql/*/bin``). PostgreSQL refuses to run as root,
so when the tests run as root every server binary runs as the ``postgres`` user through
``runuser`` and the data folder is chowned to it.

Fixtures: ``postgres_server`` (one server per test session) and ``pg_dsn`` (a fresh, empty
database on it for each test, dropped afterwards).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from testkit import free_port

__all__ = ["PostgresServer", "find_bin_dir", "own_postgres_server", "pg_dsn", "postgres_server"]

_USER = "postgres"


def find_bin_dir(install: bool = True) -> Path:
    """The folder holding ``initdb``/``pg_ctl`` (newest version), installing PostgreSQL from
    Debian packages if none is found and ``install`` is set."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found and install:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(
            ["apt-get", "install", "-y", "postgresql"], capture_output=True, text=True, env=env
        )
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
            result = subprocess.run(
                ["apt-get", "install", "-y", "postgresql"], capture_output=True, text=True, env=env
            )
        if result.returncode != 0:
            raise RuntimeError(f"apt-get install postgresql failed: {result.stderr[-2000:]}")
        return find_bin_dir(install=False)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb")
    return Path(found[-1]).parent


class PostgresServer:
    """One private PostgreSQL instance in a temporary folder on a free loopback port.

    ``start()`` creates the cluster on first use; ``stop(mode)`` stops it (``"fast"``: clean
    shutdown, ``"immediate"``: like a crash, recovery replays the WAL at the next start) and
    keeps the data, so ``start()`` again is a restart on the same port. ``close()`` stops it
    and deletes the folder. Usable as a context manager.
    """

    def __init__(self, *, port: int | None = None, fsync: bool = True) -> None:
        self.port = port or free_port()
        self.fsync = fsync
        self.bin_dir: Path | None = None
        self.root: Path | None = None
        self.running = False

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "server not created yet"
        return self.root / "data"

    @property
    def dsn(self) -> str:
        """Connection string of the ``postgres`` database as the ``postgres`` superuser."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        """Connection string of database ``dbname`` on this server."""
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{dbname}?connect_timeout=5"

    def _as_postgres(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", _USER, "--", *args] if os.geteuid() == 0 else args
        return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]

    def _create(self) -> None:
        self.bin_dir = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="seamless-pg-"))
        (self.root / "sock").mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam(_USER)
            for path in (self.root, self.root / "sock"):
                os.chown(path, user.pw_uid, user.pw_gid)
        result = self._as_postgres(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                _USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",  # the cluster files themselves; the server runs with fsync on
            ]
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stdout[-1000:]} {result.stderr[-2000:]}")

    def start(self) -> PostgresServer:
        """Start the server (creating the cluster the first time); waits until it accepts."""
        if self.running:
            return self
        if self.root is None:
            self._create()
        assert self.bin_dir is not None and self.root is not None
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root / 'sock'}",
                f"-c fsync={'on' if self.fsync else 'off'}",
                "-c synchronous_commit=on",
                "-c shared_buffers=32MB",
                "-c max_connections=200",
            ]
        )
        result = self._as_postgres(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr[-1000:]}\n{self.log_tail()}")
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data: ``fast`` (clean) or ``immediate`` (crash-like)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"mode must be smart, fast or immediate, got {mode!r}")
        if not self.running:
            return
        assert self.bin_dir is not None  # set when the server was created
        result = self._as_postgres(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {result.stderr[-1000:]}")
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop (``mode``) and start again on the same port with the same data."""
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop("immediate")
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server log (for failure messages)."""
        if self.root is None:
            return ""
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def create_database(self) -> str:
        """Create a fresh empty database and return its DSN."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def drop_database(self, dsn: str) -> None:
        """Drop the database of ``dsn`` (disconnecting whoever is still connected)."""
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _private_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        server.close()
        pytest.fail(f"cannot start a private PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the whole test session (a failure if unavailable)."""
    yield from _private_server()


@pytest.fixture(scope="module")
def own_postgres_server() -> Iterator[PostgresServer]:
    """A server of one test module alone, for tests that stop or restart it (so the session's
    server is never disturbed)."""
    yield from _private_server()


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh, empty database on the session's server, dropped after the test."""
    if not postgres_server.running:  # a test that stopped the server must not break the rest
        postgres_server.start()
    dsn = postgres_server.create_database()
    try:
        yield dsn
    finally:
        if not postgres_server.running:
            postgres_server.start()
        postgres_server.drop_database(dsn)
