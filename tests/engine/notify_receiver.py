"""A real local HTTP endpoint for the notification tests: a webhook receiver that can refuse
its first requests, and a fake Telegram Bot API (``sendMessage``), both on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    """A port nothing listens on (a connection to it is refused until something binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """Records every request (path, headers, JSON body); answers 500 to the first
    ``fail_first`` ones and then 200 with ``{"ok": true}`` (what the Bot API answers), each
    after ``delay_s`` (a slow endpoint)."""

    def __init__(self, port: int = 0, *, fail_first: int = 0, delay_s: float = 0.0) -> None:
        self.port = port
        self.delay_s = delay_s
        self.fail_remaining = fail_first
        self.requests: list[dict[str, Any]] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:  # the sender died mid-request (a SIGKILL): not received
                    self.close_connection = True
                    return
                time.sleep(owner.delay_s)
                with owner._lock:
                    refuse = owner.fail_remaining > 0
                    if refuse:
                        owner.fail_remaining -= 1
                        owner.refused += 1
                    else:
                        owner.requests.append(
                            {
                                "path": self.path,
                                "headers": dict(self.headers.items()),
                                "body": json.loads(raw or b"null"),
                            }
                        )
                answer = b'{"ok": false}' if refuse else b'{"ok": true, "result": {}}'
                self.send_response(500 if refuse else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def unique_ids(self) -> set[str]:
        """Event ids delivered (a receiver deduplicating by the idempotency key)."""
        return {r["headers"]["Idempotency-Key"] for r in self.received()}
