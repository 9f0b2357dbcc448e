"""Every HTTP endpoint fuzzed over a real server and kernel (one per module, free loopback port).

Requests are written as raw bytes on a socket, so any header value (unicode, control-free
binary, 8 KB long) and any query string reach the server as an attacker would send them.
Contract: a 2xx/4xx answer (never 5xx), JSON (or an SSE stream) from our handlers, never a
Python traceback; hostile topic filters are refused (400) or match nothing, and the event log
keeps every event it had, with gapless seqs.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.kernel import Kernel
from panel_app.server import DashboardServer
from streams.events import Heartbeat
from testkit.access_server import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    make_kernel,
    server_fixture,
)

HTTP = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))

SQLI = [
    "x' OR 1=1 --",
    "'; DROP TABLE events; --",
    "orders.*' UNION SELECT * FROM snapshots --",
    "system.%' OR topic LIKE '%",
    "\\'; DELETE FROM events WHERE seq > 0; --",
    'a") OR ("1"="1',
    "commands; VACUUM",
    "data.>.x",
    "**.**",
    "system.*\x00",
]
HOSTILE = st.one_of(
    st.sampled_from(SQLI),
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20).map(lambda s: s * 50),
    st.sampled_from(["", " ", "é€😀", "A" * 8000, "9" * 40, "-1", "0x10", "1e9", "\t"]),
)


RESET = -1  # status of a request whose connection the server closed before any answer


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> Raw:
    """Send one request as raw bytes (headers UTF-8 encoded) and read the answer.

    For an SSE answer only the head and the first chunk are read, then the socket is closed.
    """
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass") + body
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        buf = b""
        try:
            sock.sendall(data)
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            # The server answered early (e.g. 401/413) and closed while we were still sending.
            if not buf:
                return Raw(RESET, {}, b"")
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1]) if status_line.startswith("HTTP/") else 0
        parsed = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        if "text/event-stream" in parsed.get("content-type", ""):
            return Raw(status, parsed, rest)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed after answering: what was read is the answer
    return Raw(status, parsed, rest)


def check(reply: Raw, *, allow: tuple[int, ...] = ()) -> None:
    """No 5xx, no traceback, JSON (or SSE) bodies."""
    assert reply.status and (reply.status < 500 or reply.status in allow), reply
    text = reply.body.decode("utf-8", "replace")
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    kind = reply.headers.get("content-type", "")
    if "json" in kind:
        json.loads(reply.body)
    elif reply.status != 400 or reply.body:  # tornado's own 400 for an unparsable request
        assert "text/event-stream" in kind or reply.status in (301, 302, 404, 405), reply


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = make_kernel(Path(tmp_path_factory.mktemp("httpfuzz")))
    for i in range(20):
        k.bus.publish(Heartbeat(component="seed", count=i))
    k.bus.join(10)
    yield k
    k.stop()


server = server_fixture(sse_heartbeat_s=0.2)


@pytest.fixture(scope="module")
def before(kernel: Kernel, server: DashboardServer) -> list[str]:
    """The event ids in the log before any fuzzing (must all survive)."""
    return [e.event_id for e in kernel.log.read()]


AUTH = st.one_of(
    st.sampled_from(
        [
            f"Bearer {VIEWER_TOKEN}",
            f"Bearer {OPERATOR_TOKEN}",
            f"bearer  {VIEWER_TOKEN} ",
            "Bearer",
            "Bearer ",
            "Basic YWxpY2U6YWxpY2Utb3BlcmF0b3ItcHc=",
            f"Bearer {VIEWER_TOKEN}x",
        ]
    ),
    HOSTILE.map(lambda s: f"Bearer {s}"),
    HOSTILE,
)


def _headers(auth: str | None, extra: dict[str, str]) -> dict[str, str]:
    headers = dict(extra)
    if auth is not None:
        headers["Authorization"] = auth
    return {k: v.replace("\r", "").replace("\n", "") for k, v in headers.items()}


@HTTP
@given(
    auth=st.none() | AUTH,
    cookie=st.none() | HOSTILE,
    path=st.none() | HOSTILE,
    endpoint=st.sampled_from(["/api/state", "/api/health", "/api/state/", "/api/nope"]),
)
def test_state_and_health_answer_4xx_or_2xx_json(
    server: DashboardServer,
    before: list[str],
    auth: str | None,
    cookie: str | None,
    path: str | None,
    endpoint: str,
) -> None:
    extra = {"Cookie": f"user={cookie}; seamless_user={cookie}"} if cookie is not None else {}
    target = endpoint + (f"?path={urllib.parse.quote(path)}" if path is not None else "")
    check(raw_request(server.port, "GET", target, _headers(auth, extra)))


@HTTP
@given(
    topic=st.none() | HOSTILE,
    last_id=st.none() | HOSTILE | st.integers(0, 2**70).map(str),
    query_id=st.none() | HOSTILE,
    auth=st.sampled_from([f"Bearer {VIEWER_TOKEN}", f"Bearer {OPERATOR_TOKEN}", "Bearer x"]),
)
def test_events_filters_and_last_event_id_never_fail_or_inject(
    server: DashboardServer,
    kernel: Kernel,
    before: list[str],
    topic: str | None,
    last_id: str | None,
    query_id: str | None,
    auth: str,
) -> None:
    query = {}
    if topic is not None:
        query["topic"] = topic
    if query_id is not None:
        query["last_event_id"] = query_id
    target = "/api/events" + ("?" + urllib.parse.urlencode(query) if query else "")
    extra = {"Last-Event-ID": last_id} if last_id is not None else {}
    reply = raw_request(server.port, "GET", target, _headers(auth, extra))
    check(reply)
    if topic in SQLI and reply.status == 200:
        # A pattern that validated is bound as a parameter: it can only match nothing.
        assert b"data:" not in reply.body


COMMAND_BODIES = st.one_of(
    st.builds(
        lambda c, a: json.dumps({"command": c, "args": a}).encode(),
        st.one_of(st.sampled_from(["pause", "resume", "nope", "reset"]), HOSTILE),
        st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), HOSTILE), max_size=3),
    ),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[]",
            b"null",
            b'{"command": 1}',
            b'{"command": "pause", "args": []}',
            b'{"command": "set_risk_limits", "args": {"limits": {"max_position": NaN}}}',
            b'{"command": "set_risk_limits", "args": {"limits": {"x": Infinity}}}',
            b"\xff\xfe\x00",
            b'{"command": "pause", "args": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
            b"x" * 70_000,
        ]
    ),
    st.binary(max_size=200),
)


@HTTP
@given(
    body=COMMAND_BODIES,
    auth=st.none() | AUTH,
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; x"]),
    origin=st.none() | st.sampled_from(["http://evil.example", "null", "http://127.0.0.1"]),
)
def test_command_answers_4xx_or_202_never_5xx(
    server: DashboardServer,
    before: list[str],
    body: bytes,
    auth: str | None,
    content_type: str,
    origin: str | None,
) -> None:
    extra = {"Content-Type": content_type} if content_type else {}
    if origin is not None:
        extra["Origin"] = origin
    reply = raw_request(server.port, "POST", "/api/command", _headers(auth, extra), body)
    if reply.status == RESET:
        assert len(body) > 64 * 1024  # refused unread: only ever a too-large body
        return
    check(reply)
    if auth is None:
        assert reply.status == 401
    elif auth == f"Bearer {VIEWER_TOKEN}" and reply.status not in (400, 403, 413, 415):
        raise AssertionError(f"a viewer command got {reply.status}")


def test_after_fuzzing_nothing_committed_is_lost(
    server: DashboardServer, kernel: Kernel, before: list[str]
) -> None:
    kernel.bus.join(10)
    events = kernel.log.read()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.event_id for e in events[: len(before)]] == before
    assert kernel.health()["event_log"]["healthy"]
    assert kernel.bus.stats.hook_errors == 0
    reply = raw_request(
        server.port, "GET", "/api/health", {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    )
    assert reply.status == 200 and json.loads(reply.body)["ok"]
