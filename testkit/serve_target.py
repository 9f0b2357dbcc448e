"""The real dashboard server (``seamless serve``) as a crash-loop target.

Used by ``python -m bench crash_loop --serve`` (through :mod:`testkit.crash_loop`) and
``tests/engine/test_serve_crash.py``: start ``seamless serve`` on a free loopback port with the
crash loop's fast synthetic trading config plus a viewer API token, wait for ``/api/health``,
and stream ``/api/events?topic=>`` with the token in a thread. The SSE stream publishes a
critical event only after it is committed (durable before visible), so every critical event
received counts as acknowledged.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from engine.access import hash_token, new_api_token
from streams.errors import EventError
from streams.events.base import event_class
from testkit import free_port
from testkit.engine_process import SEAMLESS, env


def write_serve_config(config: Path) -> tuple[Path, str]:
    """A copy of the crash loop's ``config`` with one viewer API token; (path, the token)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    token, token_hash = new_api_token()
    data["access"] = {"api_tokens": {token_hash: {"user": "crash-loop", "role": "viewer"}}}
    assert hash_token(token) == token_hash
    path = config.with_name("crash_serve.yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, token


def is_critical(data: dict[str, Any]) -> bool:
    try:
        return bool(event_class(str(data.get("type"))).CRITICAL)
    except EventError:
        return False


class EventRecorder(threading.Thread):
    """Streams ``/api/events?topic=>`` and records every critical event received.

    Reconnects (with ``Last-Event-ID``, so the server catches up from its log) after an
    overflow or a dropped connection, until :meth:`stop` or the server is gone.
    """

    def __init__(self, port: int, token: str) -> None:
        super().__init__(name="sse-recorder", daemon=True)
        self.port = port
        self.token = token
        self.critical: list[dict[str, Any]] = []
        self.frames = 0
        self.connects = 0
        self.last_id = 0
        #: frames whose ``id:`` is not the seq of the event they carry (must stay 0)
        self.id_mismatches = 0
        self._stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None

    def acknowledged(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.critical)

    def stop(self, timeout: float = 10.0) -> None:
        """No more reconnects; read what the server sent until its end, then close."""
        self._stop_flag.set()
        self.join(timeout)
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        while not self._stop_flag.is_set():
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                self._stream()
            if not self._stop_flag.is_set():
                time.sleep(0.1)

    def _stream(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self._conn = conn
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if self.last_id:
            headers["Last-Event-ID"] = str(self.last_id)
        try:
            query = urllib.parse.urlencode({"topic": ">"})
            conn.request("GET", f"/api/events?{query}", headers=headers)
            response = conn.getresponse()
            if response.status != 200:
                raise http.client.HTTPException(f"/api/events: HTTP {response.status}")
            self.connects += 1
            event_id, data = 0, ""
            while True:
                raw = response.fp.readline()
                if not raw:
                    return  # server gone
                if not raw.endswith(b"\n"):
                    return  # cut mid-line by the kill: an incomplete frame is not received
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "":  # end of a frame: it was received complete
                    if data:
                        self._received(event_id, data)
                    event_id, data = 0, ""
        finally:
            conn.close()

    def _received(self, event_id: int, data: str) -> None:
        event = json.loads(data)
        self.frames += 1
        if event_id:
            self.last_id = max(self.last_id, event_id)
        if event_id and event.get("seq") != event_id:
            self.id_mismatches += 1
        if is_critical(event):
            with self._lock:
                self.critical.append(event)


class ServeProcess:
    """One ``seamless serve`` process and the SSE recorder attached to it."""

    def __init__(self, config: Path, token: str, err: Path) -> None:
        self.port = free_port()
        self.token = token
        self.err = err
        with err.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [SEAMLESS, "serve", "--config", str(config), "--port", str(self.port)],
                cwd=config.parent,
                env=env(),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.recorder = EventRecorder(self.port, token)

    def health(self) -> dict[str, Any] | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/health", headers={"Authorization": f"Bearer {self.token}"})
            response = conn.getresponse()
            body: dict[str, Any] = json.loads(response.read())
            return body if response.status == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for a healthy ``/api/health``, then start streaming events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"seamless serve exited early: {self.err.read_text()}")
            if self.health() is not None:
                self.recorder.start()
                return
            time.sleep(0.1)
        raise AssertionError(f"seamless serve not healthy in {timeout} s: {self.err.read_text()}")

    def wait_first_event(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.recorder.frames:
            time.sleep(0.02)

    def kill(self, sig: int) -> int:
        """Send ``sig``, wait for the exit, stop the recorder; the exit status."""
        self.proc.send_signal(sig)
        try:
            try:
                code = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                # Stuck: have it print its threads' stacks (engine.process_tuning), then end it.
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(2)
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"seamless serve did not exit within 30 s of signal {sig}; its stderr, "
                    f"ending with its threads' stacks:\n{self.err.read_text()[-20000:]}"
                ) from None
        finally:
            if self.recorder.is_alive():
                self.recorder.stop()
        return code
