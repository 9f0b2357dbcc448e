"""Shared builders for the auth and API tests: a real kernel on DuckDB and a real server.

The server runs on a free loopback port in a background thread; tests talk to it over real
HTTP with ``http.client``, and read what a page shows the way its browser would: the page's
Bokeh document pulled over the server's websocket (:func:`pull_document`). A test module that
talks to one live server takes its ``kernel``, ``server`` and ``client`` fixtures from
:func:`kernel_fixture`, :func:`server_fixture` and :func:`client_fixture`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.access import hash_password
from engine.config import AccessConfig, ApiTokenConfig, UserConfig, parse_config
from engine.kernel import Kernel
from panel_app.server import DashboardServer
from testkit import free_port

PASSWORDS = {"alice": "alice-operator-pw", "bob": "bob-viewer-pw"}
OPERATOR_TOKEN = "op-token-0123456789abcdef0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef0123456789ab"
SECRET = "test-cookie-secret-0123456789abcdef0123456789"
#: (pn.state.user, current_role()) as seen inside each Panel session the test server created.
SESSIONS_SEEN: list[tuple[str | None, str | None]] = []


def make_access(**overrides: Any) -> AccessConfig:
    """A non-dev access config: alice operator, bob viewer, one token per role."""
    from engine.access import hash_token

    values: dict[str, Any] = {
        "dev_mode": False,
        "cookie_secret": SECRET,
        "login_failure_delay_s": 0.0,
        "users": {
            "alice": UserConfig(role="operator", password_hash=hash_password(PASSWORDS["alice"])),
            "bob": UserConfig(role="viewer", password_hash=hash_password(PASSWORDS["bob"])),
        },
        "api_tokens": {
            hash_token(OPERATOR_TOKEN): ApiTokenConfig(user="ops-bot", role="operator"),
            hash_token(VIEWER_TOKEN): ApiTokenConfig(user="notebook", role="viewer"),
        },
    }
    values.update(overrides)
    return AccessConfig(**values)


def make_kernel(tmp_path: Path, **sections: dict[str, Any]) -> Kernel:
    """A started kernel on a DuckDB file in ``tmp_path``, no feed, runner not started.

    ``sections`` are further config sections (``bus={"stall_warn_s": 0.3}``), for the tests
    that need a setting more.
    """
    data: dict[str, Any] = {
        "storage": {"db_path": str(tmp_path / "seamless.duckdb")},
        "feed": {"kind": "none"},
        "runner": {"autostart": False},
        "broker": {"account_path": str(tmp_path / "paper_broker.json")},
        **sections,
    }
    return Kernel.from_config(parse_config(data, env={})).start()


def start_server(kernel: Kernel, access: AccessConfig) -> DashboardServer:
    """A dashboard server over ``kernel`` on a free port; its app records who is signed in."""
    import panel as pn

    from panel_app.auth import current_role, current_user

    def app() -> Any:
        SESSIONS_SEEN.append((current_user(), current_role()))
        return pn.pane.Markdown(f"whoami={current_user()}/{current_role()}")

    server = DashboardServer(kernel.config, port=free_port(), kernel=kernel, access=access, app=app)
    return server.start_background()


def kernel_fixture(folder: str) -> Callable[..., Any]:
    """A module-scoped ``kernel`` fixture: :func:`make_kernel` in a fresh temp folder named
    ``folder``, stopped after the module. A test module assigns it:
    ``kernel = kernel_fixture("api")``."""

    @pytest.fixture(scope="module")
    def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
        k = make_kernel(Path(tmp_path_factory.mktemp(folder)))
        yield k
        k.stop()

    return kernel


def server_fixture(**access: Any) -> Callable[..., Any]:
    """A module-scoped ``server`` fixture: :func:`start_server` over the module's ``kernel``
    fixture with ``make_access(**access)``; it stops after the module and leaves the engine to
    the ``kernel`` fixture. A test module assigns it: ``server = server_fixture()``."""

    @pytest.fixture(scope="module")
    def server(kernel: Kernel) -> Iterator[DashboardServer]:
        srv = start_server(kernel, make_access(**access))
        yield srv
        srv.stop(engine=False)

    return server


def client_fixture() -> Callable[..., Any]:
    """A ``client`` fixture: a new :class:`Client` (no cookies yet) of the module's ``server``
    fixture for each test. A test module assigns it: ``client = client_fixture()``."""

    @pytest.fixture
    def client(server: DashboardServer) -> Client:
        return Client(server.port)

    return client


@dataclass
class Reply:
    """One HTTP response, fully read."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def cookies(self) -> dict[str, str]:
        out = {}
        for header in self.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            out[name.strip()] = rest.split(";", 1)[0]
        return out


@dataclass
class Client:
    """A tiny HTTP client for one server, keeping cookies like a browser would."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 15.0,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.headers, resp.read())
        conn.close()
        return reply

    def login(self, user: str, password: str) -> Reply:
        form = urllib.parse.urlencode({"username": user, "password": password, "next": "/"})
        reply = self.request(
            "POST",
            "/login",
            form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        self.cookies.update({k: v for k, v in reply.cookies().items() if v})
        return reply


class SseStream:
    """A Server-Sent Events connection read frame by frame."""

    def __init__(self, port: int, path: str, headers: dict[str, str], timeout: float = 10.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status

    def frames(self) -> Iterator[dict[str, str]]:
        """Frames as {field: value}; comments appear as {'comment': text}."""
        frame: dict[str, str] = {}
        while True:
            raw = self.response.fp.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\n")
            if not line:
                if frame:
                    yield frame
                frame = {}
            elif line.startswith(":"):
                yield {"comment": line[1:].strip()}
            else:
                name, _, value = line.partition(":")
                frame[name] = value.removeprefix(" ")

    def collect(
        self, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Data frames (id + decoded event) until ``until(frames)`` or ``timeout``."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        for frame in self.frames():
            if "data" in frame and "event" not in frame:
                got.append({"id": frame.get("id"), "event": json.loads(frame["data"])})
                if until(got):
                    return got
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"stream ended or timed out after {len(got)} events")

    def close(self) -> None:
        self.conn.close()


def pull_document(client: Client, path: str, timeout: float = 30.0) -> dict[str, Any]:
    """The Bokeh document a browser gets for the page at ``path``, as ``client`` (its cookies).

    Like the page's script: GET the page (the server builds the session's document then), take
    the session token from it, open the server's websocket with the same cookies and ask for
    the document (``PULL-DOC-REQ``). Returns the document's JSON.
    """
    from bokeh.client.websocket import WebSocketClientConnectionWrapper
    from bokeh.protocol import Protocol
    from bokeh.protocol.receiver import Receiver
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    page = client.request("GET", path)
    assert page.status == 200, f"GET {path}: {page.status} {page.headers.get('Location')}"
    found = re.search(rb'"token":"([^"]+)"', page.body)
    assert found is not None, "no Bokeh session token in the page"
    token = found.group(1).decode()
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    request = HTTPRequest(
        f"ws://127.0.0.1:{client.port}{path.rstrip('/')}/ws",
        headers={"Cookie": cookies} if cookies else {},
        request_timeout=timeout,
    )

    async def pull() -> dict[str, Any]:
        ws = await websocket_connect(request, subprotocols=["bokeh", token])
        protocol = Protocol()
        receiver = Receiver(protocol)

        async def message() -> Any:
            while True:
                fragment = await ws.read_message()
                assert fragment is not None, "the server closed the websocket"
                got = await receiver.consume(fragment)
                if got is not None:
                    return got

        try:
            await message()  # ACK
            await protocol.create("PULL-DOC-REQ").send(WebSocketClientConnectionWrapper(ws))
            while (reply := await message()).msgtype != "PULL-DOC-REPLY":
                pass
            doc: dict[str, Any] = reply.content["doc"]
            return doc
        finally:
            ws.close()

    # In a thread of its own: this thread may already run an event loop (Playwright's).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(asyncio.wait_for(pull(), timeout))).result()


def document_models(doc: Any) -> list[dict[str, Any]]:
    """Every model in a document's JSON (``{"type": "object", "name", "attributes"}``)."""
    found: list[dict[str, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "object" and "name" in node:
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
