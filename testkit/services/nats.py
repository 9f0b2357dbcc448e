"""A private nats-server with JetStream for tests: free loopback port, store in a temp folder.

``NatsServer`` installs ``nats-server`` from Debian (``apt-get install -y nats-server``) when it
is missing, starts ``nats-server -js -sd <tmp> -a 127.0.0.1 -p <free port>`` and waits until it
accepts clients. ``stop()`` / ``start()`` keep the same port and store folder, so a test can
take the server away "for a while" and bring it back with its JetStream data. A server that
cannot be installed or started fails the test (``pytest.fail``), it never skips it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import free_port

__all__ = ["NatsServer", "nats_server"]

_START_TIMEOUT_S = 20.0


def _which() -> str | None:
    found = shutil.which("nats-server")
    if found is None and os.path.exists("/usr/sbin/nats-server"):
        found = "/usr/sbin/nats-server"
    return found


def nats_binary() -> str:
    """Path of ``nats-server``, installing the Debian package first when it is missing."""
    found = _which()
    if found:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "nats-server"]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=False, capture_output=True)
        subprocess.run(install, env=env, check=False, capture_output=True)
    found = _which()
    if found is None:
        pytest.fail("nats-server is missing and `apt-get install -y nats-server` did not work")
    return found


class NatsServer:
    """One nats-server process with JetStream (file store) on 127.0.0.1:<port>.

    Use as a context manager, or call ``start()`` / ``close()``. ``url`` is stable across
    ``stop()`` / ``start()``; ``kill()`` stops it with SIGKILL (a crash) instead of SIGTERM.
    """

    def __init__(self, store_dir: str | os.PathLike[str] | None = None) -> None:
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="seamless-nats-"))
        self.port = free_port()
        self.binary = nats_binary()
        self.log_path = self.store_dir / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL, e.g. ``nats://127.0.0.1:41234``."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> NatsServer:
        """Start the server (same port and store as before) and wait until it accepts clients."""
        if self.running:
            return self
        cmd = [self.binary, "-js", "-sd", str(self.store_dir / "jetstream")]
        cmd += ["-a", "127.0.0.1", "-p", str(self.port), "-l", str(self.log_path)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                pytest.fail(f"nats-server exited with {self._proc.returncode}: {self._log_tail()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"nats-server on port {self.port} not ready in time: {self._log_tail()}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                return sock.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (the store folder stays, so ``start()`` brings its data back)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as in a crash."""
        self.stop(signal.SIGKILL)

    def close(self) -> None:
        """Stop the server and remove the store folder it created."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A fresh private nats-server with JetStream for one test (removed afterwards)."""
    with NatsServer() as server:
        yield server
