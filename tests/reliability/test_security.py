"""Security, tested with forged requests against a real server (not only hidden buttons).

Controls and endpoints refuse unauthenticated and viewer callers; passwords are stored hashed;
no secret is committed; a non-dev start without a cookie secret refuses to start; the
websocket refuses foreign origins; hostile filter strings cannot inject SQL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from engine.access import DEV_COOKIE_SECRET, load_users_file
from engine.kernel import Kernel
from panel_app.server import DashboardServer
from persistence import EventLog
from streams.errors import ConfigError, SeamlessError
from streams.events import Heartbeat
from testkit.access_server import (
    PASSWORDS,
    VIEWER_TOKEN,
    Client,
    kernel_fixture,
    server_fixture,
)
from tests.reliability.test_fuzz_http import SQLI, raw_request

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = [("GET", "/api/state"), ("GET", "/api/health"), ("GET", "/api/events")]
COMMAND = json.dumps({"command": "pause", "args": {}}).encode()
JSON_CT = {"Content-Type": "application/json"}


kernel = kernel_fixture("security")
server = server_fixture(sse_heartbeat_s=0.2)


def _refusals(kernel: Kernel) -> int:
    kernel.bus.join(10)
    return sum(1 for e in kernel.log.read(types=["command_refused"]))


# -- authentication and roles ---------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [*ENDPOINTS, ("POST", "/api/command")])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic " + base64.b64encode(b"alice:alice-operator-pw").decode()},
        {"Cookie": "seamless_user=alice"},  # unsigned: forged
        {"Cookie": 'seamless_user="2|1:0|10:1700000000|13:seamless_user|8:YWxpY2U=|00ff"'},
    ],
    ids=["none", "bad-token", "basic", "plain-cookie", "forged-signature"],
)
def test_no_or_forged_credentials_get_401(
    server: DashboardServer, method: str, path: str, headers: dict[str, str]
) -> None:
    body = COMMAND if method == "POST" else b""
    reply = raw_request(server.port, method, path, {**headers, **JSON_CT}, body)
    assert reply.status == 401, reply
    assert json.loads(reply.body)["error"] == "authentication required"


def test_a_viewer_token_may_read_but_not_command(server: DashboardServer, kernel: Kernel) -> None:
    bearer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    assert raw_request(server.port, "GET", "/api/state", bearer).status == 200
    refused = _refusals(kernel)
    reply = raw_request(server.port, "POST", "/api/command", {**bearer, **JSON_CT}, COMMAND)
    assert reply.status == 403
    assert _refusals(kernel) == refused + 1  # audited in the log


def test_a_viewer_session_cookie_cannot_command(server: DashboardServer, kernel: Kernel) -> None:
    client = Client(server.port)
    client.login("bob", PASSWORDS["bob"])
    assert client.cookies, "login as the viewer failed"
    status_before = kernel.runner.status
    for command in ("pause", "stop", "flatten", "set_risk_limits", "halt"):
        body = json.dumps({"command": command, "args": {}}).encode()
        reply = client.request("POST", "/api/command", body, JSON_CT)
        assert reply.status == 403, (command, reply)
    kernel.bus.join(10)
    assert kernel.runner.status == status_before


def test_a_forged_engine_actor_in_the_body_changes_nothing(
    server: DashboardServer, kernel: Kernel
) -> None:
    """The actor is the authenticated caller, never a field the client sends."""
    body = json.dumps({"command": "pause", "args": {}, "actor": "engine"}).encode()
    bearer = {"Authorization": f"Bearer {VIEWER_TOKEN}", **JSON_CT}
    assert raw_request(server.port, "POST", "/api/command", bearer, body).status == 403


def test_nan_in_operator_args_is_a_400_not_a_lost_batch(
    server: DashboardServer, kernel: Kernel
) -> None:
    from testkit.access_server import OPERATOR_TOKEN

    seq = kernel.log.last_seq
    body = b'{"command": "set_risk_limits", "args": {"limits": {"max_position": NaN}}}'
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", **JSON_CT}
    reply = raw_request(server.port, "POST", "/api/command", headers, body)
    assert reply.status == 400 and b"JSON" in reply.body
    kernel.bus.publish(Heartbeat(component="after", count=1))
    kernel.bus.join(10)
    # The rejected body wrote nothing; the next event is written. (The runner's own heartbeat
    # comes every second, so it may land in between.)
    written = [e for e in kernel.log.read(since_seq=seq) if getattr(e, "component", "") != "runner"]
    assert [(e.type, e.component) for e in written] == [("heartbeat", "after")]  # type: ignore[attr-defined]
    assert kernel.bus.stats.hook_errors == 0


# -- passwords and secrets ------------------------------------------------------------------
HASH = re.compile(r"^(scrypt|pbkdf2_sha256)\$")


def _tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def _walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


def test_config_and_users_files_hold_only_password_hashes() -> None:
    checked = 0
    for file in _tracked_files():
        if file.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for path, value in _walk(data):
            if "password" in path.rsplit(".", 1)[-1].lower() and value:
                assert isinstance(value, str) and HASH.match(value), f"{file}: {path}"
                checked += 1
    assert checked >= 0  # the repository ships no users; the rule holds for any it ever does


def test_a_users_file_with_a_plaintext_password_is_refused(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(yaml.safe_dump({"users": {"eve": {"role": "operator", "password_hash": "x"}}}))
    with pytest.raises(ConfigError, match="password_hash"):
        load_users_file(users)


SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "aws key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "github token": re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}"),
    "slack token": re.compile(r"xox[abpr]-[A-Za-z0-9-]{10,}"),
    "cookie secret": re.compile(
        r"(?i)(cookie_secret|SEAMLESS_COOKIE_SECRET)\s*[:=]\s*['\"]?([A-Za-z0-9_\-+/=]{16,})"
    ),
    "plaintext password": re.compile(r"(?i)\bpassword\s*[:=]\s*['\"]([^'\"\s]{6,})['\"]"),
}
#: Fake values that are meant to be public: the documented dev secret and test fixtures.
ALLOWED = (DEV_COOKIE_SECRET, "test-cookie-secret", "-pw", "example", "changeme", "dummy")


def test_no_secret_is_committed() -> None:
    found = []
    for file in _tracked_files():
        try:
            text = file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for name, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                if any(word in match.group(0) for word in ALLOWED):
                    continue
                if file.parts[-2:] == ("reliability", "test_security.py"):
                    continue  # the patterns themselves
                found.append(f"{file.relative_to(ROOT)}: {name}: {match.group(0)[:60]}")
    assert not found, "\n".join(found)


def test_a_non_dev_serve_without_cookie_secret_refuses_to_start(tmp_path: Path) -> None:
    """The real ``seamless serve`` process exits with the reason before listening."""
    config = tmp_path / "prod.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"db_path": str(tmp_path / "p.duckdb")},
                "feed": {"kind": "none"},
                "access": {"dev_mode": False},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "SEAMLESS_COOKIE_SECRET"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "panel_app.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "cookie_secret" in proc.stderr and "Traceback" not in proc.stderr
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(0.5)
        sock.connect(("127.0.0.1", port))


# -- websocket origin -------------------------------------------------------------------------
def _upgrade(port: int, origin: str, cookies: dict[str, str]) -> int:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Origin": origin,
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
    }
    lines = ["GET /ws HTTP/1.1", f"Host: 127.0.0.1:{port}"] + [
        f"{k}: {v}" for k, v in headers.items()
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = sock.recv(4096).decode("latin-1")
    return int(head.split(" ")[1])


def test_a_websocket_from_a_foreign_origin_is_refused(server: DashboardServer) -> None:
    client = Client(server.port)
    client.login("alice", PASSWORDS["alice"])  # a valid session: only the origin is wrong
    assert client.cookies
    for origin in ("http://evil.example", "null", f"http://127.0.0.1.evil.example:{server.port}"):
        assert _upgrade(server.port, origin, client.cookies) == 403, origin
    # The served origin itself is allowed past the origin check (Bokeh then wants its token).
    assert _upgrade(server.port, f"http://127.0.0.1:{server.port}", client.cookies) != 403


# -- SQL injection ----------------------------------------------------------------------------
def test_hostile_filters_in_the_event_log_browser_cannot_inject(tmp_path: Path) -> None:
    """The event-log browser passes its filters to EventLog.read_df/read/count: every hostile
    string is refused (EventError/PersistenceError) or bound as a value and matches nothing."""
    with EventLog(tmp_path / "sqli.duckdb").open() as log:
        for i in range(10):
            log.append(Heartbeat(component="x", count=i), wait=True)
        ids = [e.event_id for e in log.read()]
        for hostile in [*SQLI, "%", "_", "' OR ''='", "1; SELECT 1"]:
            for call in (
                lambda h=hostile: log.read_df(topic=h),
                lambda h=hostile: log.read(types=[h]),
                lambda h=hostile: log.count(topic=h),
                lambda h=hostile: log.read_df(types=[h], limit=5),
            ):
                try:
                    result = call()
                except SeamlessError:
                    continue
                assert len(result) == 0 if not isinstance(result, int) else result == 0
        assert [e.event_id for e in log.read()] == ids
        assert log.count() == 10


def test_hostile_topics_on_api_events_are_400_and_change_nothing(
    server: DashboardServer, kernel: Kernel
) -> None:
    import urllib.parse

    kernel.bus.join(10)
    before = [e.event_id for e in kernel.log.read()]
    bearer = {"Authorization": f"Bearer {VIEWER_TOKEN}", "Last-Event-ID": "0"}
    for hostile in SQLI:
        target = "/api/events?" + urllib.parse.urlencode({"topic": hostile})
        reply = raw_request(server.port, "GET", target, bearer)
        assert reply.status in (200, 400), reply
        if reply.status == 200:
            assert b"data:" not in reply.body
    kernel.bus.join(10)
    after = kernel.log.read()
    assert [e.event_id for e in after[: len(before)]] == before
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
