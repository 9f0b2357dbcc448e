"""The HTTP API over a real server and kernel: state, health, SSE with resume, refusals."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.parse

import pytest

from engine.kernel import Kernel
from panel_app.server import DashboardServer
from streams.events import Heartbeat
from testkit.access_server import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    Client,
    SseStream,
    client_fixture,
    kernel_fixture,
    make_access,
    server_fixture,
    start_server,
)

BEARER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


kernel = kernel_fixture("api")
server = server_fixture(sse_heartbeat_s=0.3, sse_queue_size=10)
client = client_fixture()


def publish_beats(kernel: Kernel, component: str, n: int) -> list[int]:
    """Publish ``n`` heartbeats on ``system.<component>`` and return their seqs."""
    seqs: list[int] = []
    sub = kernel.bus.subscribe(f"system.{component}", lambda e: seqs.append(e.seq))
    try:
        for i in range(n):
            kernel.bus.publish(Heartbeat(component=component, count=i, ts_event=time.time_ns()))
            kernel.bus.join(10)  # one at a time: a full inbox may conflate heartbeats
    finally:
        sub.dispose()
    return seqs


def assert_json_error(reply_body: bytes, status: int, actual: int) -> dict[str, object]:
    assert actual == status
    text = reply_body.decode()
    assert "Traceback" not in text and 'File "' not in text
    body = json.loads(text)
    assert isinstance(body, dict) and body["error"]
    return body


# -- authentication -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/state", "/api/health", "/api/events", "/api/cluster"])
def test_every_endpoint_needs_authentication(client: Client, path: str) -> None:
    reply = client.request("GET", path)

    assert_json_error(reply.body, 401, reply.status)
    assert "Bearer" in reply.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header", ["Bearer wrong-token", "Basic YWxpY2U6YWxpY2U=", "Bearer", f"Token {VIEWER_TOKEN}"]
)
def test_bad_credentials_are_refused(client: Client, header: str) -> None:
    reply = client.request("GET", "/api/state", headers={"Authorization": header})

    assert_json_error(reply.body, 401, reply.status)


def test_a_forged_session_cookie_is_refused(client: Client) -> None:
    client.cookies["user"] = "2|1:0|10:1700000000|4:user|8:YWxpY2U=|deadbeef"

    reply = client.request("GET", "/api/state")

    assert_json_error(reply.body, 401, reply.status)


def test_a_session_cookie_from_login_works(client: Client) -> None:
    client.login("bob", "bob-viewer-pw")

    reply = client.request("GET", "/api/state")

    assert reply.status == 200


# -- /api/state and /api/health -----------------------------------------------------------------
def test_state_returns_the_snapshot_with_seq_version_and_age(
    client: Client, kernel: Kernel
) -> None:
    publish_beats(kernel, "state_probe", 1)
    seq, version, _ = kernel.store.snapshot()

    reply = client.request("GET", "/api/state", headers=BEARER)

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["seq"] >= seq and body["version"] >= version
    assert isinstance(body["age_s"], float) and 0 <= body["age_s"] < 60
    assert body["state"]["account"]["cash"] == pytest.approx(100_000.0)


def test_state_path_selects_one_value_and_unknown_paths_are_404(client: Client) -> None:
    found = client.request("GET", "/api/state?path=account.cash", headers=BEARER)
    missing = client.request("GET", "/api/state?path=no.such.path", headers=BEARER)

    assert found.status == 200 and found.json()["value"] == pytest.approx(100_000.0)
    assert_json_error(missing.body, 404, missing.status)


def test_cluster_is_404_on_a_node_without_a_cluster_view(client: Client) -> None:
    reply = client.request("GET", "/api/cluster", headers=BEARER)

    body = assert_json_error(reply.body, 404, reply.status)
    assert "--mirror" in str(body["error"])


def test_health_reports_engine_bus_log_and_feed(client: Client) -> None:
    reply = client.request("GET", "/api/health", headers=BEARER)

    assert reply.status == 200
    body = reply.json()
    assert {"engine", "bus", "event_log", "feed"} <= set(body)
    assert body["event_log"]["healthy"] is True and body["ok"] is True
    assert "heartbeat_age_s" in body["engine"]


# -- bad parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "topic", ["x' OR 1=1 --", "data.>.x", "", "UPPER.case", "a..b", "<script>"]
)
def test_hostile_or_invalid_topic_patterns_get_400(client: Client, topic: str) -> None:
    query = urllib.parse.urlencode({"topic": topic})

    reply = client.request("GET", f"/api/events?{query}", headers=BEARER)

    body = assert_json_error(reply.body, 400, reply.status)
    assert "topic" in str(body["error"])


@pytest.mark.parametrize("last_id", ["abc", "-1", "1; DROP TABLE events", "9" * 40])
def test_invalid_last_event_id_gets_400(client: Client, last_id: str) -> None:
    reply = client.request("GET", "/api/events", headers={**BEARER, "Last-Event-ID": last_id})

    assert_json_error(reply.body, 400, reply.status)


def test_unknown_routes_and_methods_do_not_leak_tracebacks(client: Client) -> None:
    wrong_method = client.request("DELETE", "/api/state", headers=BEARER)
    bad_json = client.request(
        "POST",
        "/api/command",
        b"{not json",
        {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"},
    )

    assert_json_error(wrong_method.body, 405, wrong_method.status)
    assert_json_error(bad_json.body, 400, bad_json.status)


# -- Server-Sent Events --------------------------------------------------------------------------
def test_sse_delivers_live_events_filtered_by_topic(
    server: DashboardServer, kernel: Kernel
) -> None:
    stream = SseStream(server.port, "/api/events?topic=system.alpha", BEARER)
    try:
        assert stream.status == 200
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        time.sleep(0.2)  # subscribed before we publish
        publish_beats(kernel, "beta", 3)
        seqs = publish_beats(kernel, "alpha", 3)

        got = stream.collect(lambda frames: len(frames) >= 3)
    finally:
        stream.close()

    assert [int(f["id"]) for f in got] == seqs
    assert all(f["event"]["topic"] == "system.alpha" for f in got)
    assert [f["event"]["seq"] for f in got] == seqs


def test_sse_resume_replays_from_the_log_then_goes_live_without_gap_or_duplicate(
    server: DashboardServer, kernel: Kernel
) -> None:
    before = publish_beats(kernel, "gamma", 20)
    resume_from = before[4]
    later: list[int] = []
    writer = threading.Thread(target=lambda: later.extend(publish_beats(kernel, "gamma", 30)))
    # Events keep arriving while the stream replays, so the switch-over is exercised.
    writer.start()
    stream = SseStream(
        server.port, "/api/events?topic=system.gamma", {**BEARER, "Last-Event-ID": str(resume_from)}
    )
    try:
        writer.join(30)
        expected = [s for s in before + later if s > resume_from]

        got = stream.collect(lambda frames: int(frames[-1]["id"]) >= expected[-1])
    finally:
        stream.close()

    ids = [int(f["id"]) for f in got]
    assert ids == expected  # ordered, no gap, no duplicate


def test_sse_last_event_id_also_works_as_a_query_parameter(
    server: DashboardServer, kernel: Kernel
) -> None:
    seqs = publish_beats(kernel, "delta", 3)

    stream = SseStream(
        server.port, f"/api/events?topic=system.delta&last_event_id={seqs[0]}", BEARER
    )
    try:
        got = stream.collect(lambda frames: len(frames) >= 2)
    finally:
        stream.close()

    assert [int(f["id"]) for f in got] == seqs[1:]


def test_sse_sends_heartbeat_comments_when_idle(server: DashboardServer) -> None:
    stream = SseStream(server.port, "/api/events?topic=quiet.topic", BEARER)
    try:
        comments = []
        for frame in stream.frames():
            if frame.get("comment") == "heartbeat":
                comments.append(frame)
            if len(comments) >= 2:
                break
    finally:
        stream.close()

    assert len(comments) == 2


def test_closing_a_stream_releases_its_bus_subscription(
    server: DashboardServer, kernel: Kernel
) -> None:
    pattern = "system.epsilon"
    stream = SseStream(server.port, f"/api/events?topic={pattern}", BEARER)
    assert wait_for(lambda: kernel.bus.subscriber_count(pattern) == 1)

    stream.close()
    publish_beats(kernel, "epsilon", 2)  # writing to the closed socket ends the handler

    assert wait_for(lambda: kernel.bus.subscriber_count(pattern) == 0)


def test_a_slow_sse_client_is_disconnected_and_never_blocks_the_engine(
    server: DashboardServer, kernel: Kernel
) -> None:
    pattern = "system.zeta"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        b"GET /api/events?topic=system.zeta HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {VIEWER_TOKEN}\r\n\r\n".encode()
    )
    assert wait_for(lambda: kernel.bus.subscriber_count(pattern) == 1)
    started = time.monotonic()

    for i in range(3000):  # far more than the client's queue (10) and socket buffers
        kernel.bus.publish(Heartbeat(component="zeta", count=i, ts_event=time.time_ns()))
        kernel.bus.publish(Heartbeat(component="zeta_pad", count=i, ts_event=time.time_ns()))
    assert kernel.bus.join(20)
    publishing_took = time.monotonic() - started

    assert publishing_took < 20
    assert wait_for(lambda: kernel.bus.subscriber_count(pattern) == 0, timeout=20)
    sock.settimeout(5)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except OSError:
        pass
    sock.close()
    assert b"200 OK" in received.split(b"\r\n", 1)[0]


# -- commands through the API ------------------------------------------------------------------
def test_a_viewer_command_is_refused_with_403_and_audited(client: Client, kernel: Kernel) -> None:
    since = kernel.log.last_seq

    reply = client.request(
        "POST",
        "/api/command",
        json.dumps({"command": "start"}).encode(),
        {"Authorization": f"Bearer {VIEWER_TOKEN}", "Content-Type": "application/json"},
    )

    assert_json_error(reply.body, 403, reply.status)
    assert wait_for(lambda: bool(kernel.log.read(since_seq=since, types=["command_refused"])))
    refused = kernel.log.read(since_seq=since, types=["command_refused"])
    assert refused[-1].actor == "notebook" and refused[-1].command == "start"  # type: ignore[attr-defined]
    assert kernel.runner.status == "stopped"
    assert not kernel.log.read(since_seq=since, types=["command_issued"])


def test_an_operator_command_reaches_the_runner(client: Client, kernel: Kernel) -> None:
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"}

    started = client.request("POST", "/api/command", b'{"command": "start"}', headers)
    assert wait_for(lambda: kernel.runner.status == "running")
    stopped = client.request("POST", "/api/command", b'{"command": "stop"}', headers)

    assert started.status == 202 and started.json()["actor"] == "ops-bot"
    assert stopped.status == 202
    assert wait_for(lambda: kernel.runner.status == "stopped")


def test_a_cross_origin_cookie_command_is_refused(client: Client, kernel: Kernel) -> None:
    client.login("alice", "alice-operator-pw")

    reply = client.request(
        "POST",
        "/api/command",
        b'{"command": "start"}',
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
    )

    assert_json_error(reply.body, 403, reply.status)
    assert kernel.runner.status == "stopped"


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_sse_writes_a_client_at_most_once_per_flush_interval(kernel: Kernel) -> None:
    # Events arriving within the interval go out together: one socket write, not one each.
    server = start_server(kernel, make_access(sse_flush_interval_s=2.0))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    chunks: list[tuple[float, bytes]] = []
    done = threading.Event()

    def read() -> None:
        sock.settimeout(0.2)
        while not done.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            chunks.append((time.monotonic(), data))

    try:
        sock.sendall(
            b"GET /api/events?topic=system.eta HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {VIEWER_TOKEN}\r\n\r\n".encode()
        )
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert wait_for(lambda: kernel.bus.subscriber_count("system.eta") == 1)
        seqs = []
        # 6 events 50 ms apart (~0.3 s, or longer on a busy machine): within one interval
        for _ in range(6):
            seqs += publish_beats(kernel, "eta", 1)
            time.sleep(0.05)
        assert wait_for(lambda: f"id: {seqs[-1]}".encode() in b"".join(c for _, c in chunks))
    finally:
        done.set()
        sock.close()
        server.stop(engine=False)

    holding = [i for i, (_, c) in enumerate(chunks) if b"id: " in c]
    text = b"".join(c for _, c in chunks)
    assert [int(x) for x in re.findall(rb"id: (\d+)", text)] == seqs  # all, in order
    assert len(holding) <= 2, f"{len(holding)} writes for 6 events 50 ms apart"


def test_sse_clients_of_one_pattern_share_one_bus_subscription(
    server: DashboardServer, kernel: Kernel
) -> None:
    # The engine thread hands each event to the hub once per pattern, not once per client.
    pattern = "system.theta"
    streams = [SseStream(server.port, f"/api/events?topic={pattern}", BEARER) for _ in range(3)]
    try:
        assert wait_for(lambda: server_clients(server) >= 3)
        assert kernel.bus.subscriber_count(pattern) == 1
        seqs = publish_beats(kernel, "theta", 4)

        got = [s.collect(lambda frames: len(frames) >= 4) for s in streams]
    finally:
        for s in streams[:2]:
            s.close()
    try:
        publish_beats(kernel, "theta", 1)  # the closed sockets end their handlers
        assert wait_for(lambda: server_clients(server) == 1)
        assert kernel.bus.subscriber_count(pattern) == 1  # the third client still streams
    finally:
        streams[2].close()
    publish_beats(kernel, "theta", 1)

    assert all([int(f["id"]) for f in frames] == seqs for frames in got)
    assert wait_for(lambda: kernel.bus.subscriber_count(pattern) == 0)


def server_clients(server: DashboardServer) -> int:
    """SSE clients connected to ``server`` now (every route of it shares one hub)."""
    return server.sse_hub.client_count()
