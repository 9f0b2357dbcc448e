"""The systemd side of the notify protocol, for tests: a datagram socket that records what a
process sends to ``$NOTIFY_SOCKET`` (docs/operations.md, "Running under systemd").

Credentials are on (``SO_PASSCRED``), so each message comes with the sender's pid, as systemd
sees it when it applies ``NotifyAccess=main``.
"""

from __future__ import annotations

import array
import socket
import struct
import threading
import time


class NotifyListener:
    """The systemd side: a datagram socket recording (arrival, sender pid, message) triples."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, int, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        creds_size = struct.calcsize("3i")
        while not self._closed.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds_size))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = array.array("i", payload[:creds_size])[0]
            self.messages.append((time.monotonic(), pid, data.decode()))

    def wait_for(self, field: str, timeout: float, after: float = 0.0) -> tuple[float, int, str]:
        """The first message carrying ``field`` that arrived after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if message[0] > after and field in message[2].split("\n"):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no {field} within {timeout} s; got {self.messages}")

    def times(self, field: str) -> list[float]:
        return [t for t, _, text in list(self.messages) if field in text.split("\n")]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self.sock.close()
