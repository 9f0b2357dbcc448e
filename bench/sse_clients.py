"""The SSE clients of the ``load`` benchmark (a helper module, not a benchmark): threads that
stream ``/api/events?topic=>`` with a viewer bearer token and count frames, seq gaps,
duplicates, overflows and reconnects, reconnecting with ``Last-Event-ID`` after an overflow or
a disconnect. With ``load --sse-process`` they run in a child process (:func:`sse_in_child`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from typing import Any

from testkit.access_server import VIEWER_TOKEN

LAG_EVERY = 10  # decode every 10th frame for the lag (keeps the clients' own CPU small)
FRAME = re.compile(rb"^id: (\d+)\ndata: ([^\n]*)\n", re.MULTILINE)


class SseClient(threading.Thread):
    """One ``/api/events`` stream; counts frames, seq gaps, overflows and reconnects."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.received = self.gaps = self.dups = self.overflows = self.disconnects = 0
        self.last_seq = 0
        self.lags_ms: list[float] = []
        self.conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            headers = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
            if self.last_seq:
                headers["Last-Event-ID"] = str(self.last_seq)
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.conn.request("GET", "/api/events?topic=%3E", headers=headers)
                self._read(self.conn.getresponse())
            except (OSError, http.client.HTTPException):
                pass
            finally:
                if self.conn is not None:
                    self.conn.close()
            if not self.stop.is_set():
                self.disconnects += 1
                self.stop.wait(0.2)

    def _read(self, resp: http.client.HTTPResponse) -> None:
        # Whole chunks parsed with regular expressions, not line by line in Python: 50 clients
        # on this host must not take the CPU the server is measured on (as clients on other
        # machines would not).
        buf = b""
        while not self.stop.is_set():
            data = resp.read1(65536)
            if not data:
                return
            buf += data
            end = buf.rfind(b"\n\n")
            if end < 0:
                continue
            block, buf = buf[: end + 2], buf[end + 2 :]
            if b"event: overflow" in block:
                self.overflows += 1
            for seq_text, payload in FRAME.findall(block):
                seq = int(seq_text)
                self.received += 1
                if seq <= self.last_seq:
                    self.dups += 1
                else:
                    if self.last_seq and seq != self.last_seq + 1:
                        self.gaps += seq - self.last_seq - 1
                    self.last_seq = seq
                if self.received % LAG_EVERY == 0:
                    ts_init = json.loads(payload)["ts_init"]
                    self.lags_ms.append((time.time_ns() - ts_init) / 1e6)

    def close(self) -> None:
        sock = self.conn.sock if self.conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SseSummary:
    """What the driver needs of one :class:`SseClient` (also when it ran in a child)."""

    def __init__(self, client: SseClient) -> None:
        self.received, self.gaps, self.dups = client.received, client.gaps, client.dups
        self.overflows, self.disconnects = client.overflows, client.disconnects
        self.lags_ms = list(client.lags_ms)
        self.alive = client.is_alive()


def run_sse_clients(port: int, n: int, stop: threading.Event) -> list[SseClient]:
    """Start ``n`` SSE clients on ``port``; they stream until ``stop`` is set."""
    clients = [SseClient(port, stop) for _ in range(n)]
    for c in clients:
        c.start()
    return clients


def stop_sse_clients(clients: list[SseClient], stop: threading.Event) -> list[SseSummary]:
    """Stop and join the clients; their summaries."""
    stop.set()
    for c in clients:
        c.close()
    for c in clients:
        c.join(5)
    return [SseSummary(c) for c in clients]


def sse_in_child(port: int, n: int, conn: Any) -> None:
    """``--sse-process``: run the clients here until the driver says stop; send summaries."""
    stop = threading.Event()
    clients = run_sse_clients(port, n, stop)
    conn.send("started")
    conn.recv()
    conn.send(stop_sse_clients(clients, stop))
