"""``/livez``, ``/readyz`` and ``/metrics`` on a real dashboard server over a real kernel: the
probes answer without a login and with status words only; metrics need the API token and are
Prometheus text with the engine's figures."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.kernel import Kernel
from panel_app.server import DashboardServer
from streams.events import Heartbeat
from testkit import free_port
from testkit.access_server import (
    OPERATOR_TOKEN,
    PASSWORDS,
    VIEWER_TOKEN,
    Client,
    SseStream,
    client_fixture,
    make_kernel,
    server_fixture,
)
from testkit.engine_process import NotifyListener, write_config

BEARER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
PROBE_WORDS = {
    "ok\n",
    "stalled\n",
    "dispatch stopped\n",
    "ready\n",
    "not ready: starting\n",
    "not ready: stopping\n",
    "not ready: stalled\n",
}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A started kernel whose dispatch rounds count as stalled after 0.3 s, with a webhook
    channel whose receiver is down (its lag and failures show in ``/metrics``)."""
    k = make_kernel(
        Path(tmp_path_factory.mktemp("probes")),
        bus={"stall_warn_s": 0.3},
        notify={
            "webhooks": [{"url": f"http://127.0.0.1:{free_port()}/hook"}],
            "retry_initial_s": 0.05,
            "retry_max_s": 0.3,
            "poll_interval_s": 0.05,
        },
    )
    yield k
    k.stop()


server = server_fixture()
client = client_fixture()


def metrics(client: Client) -> dict[str, Any]:
    """``/metrics`` parsed with prometheus_client's own parser: family name -> family."""
    reply = client.request("GET", "/metrics", headers=BEARER)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(reply.body.decode())}


def value(family: Any, suffix: str = "", **labels: str) -> float:
    for sample in family.samples:
        if sample.name == family.name + suffix and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return float(sample.value)
    raise AssertionError(f"no {family.name}{suffix} {labels} in {family.samples}")


def assert_words_only(body: bytes) -> None:
    assert body.decode() in PROBE_WORDS


# -- probes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "words"), [("/livez", b"ok\n"), ("/readyz", b"ready\n")])
def test_probes_answer_without_a_login_with_words_only(
    client: Client, path: str, words: bytes
) -> None:
    reply = client.request("GET", path)

    assert reply.status == 200
    assert reply.body == words
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
def test_probes_ignore_credentials_and_give_no_trading_data(
    client: Client, kernel: Kernel, path: str
) -> None:
    kernel.command("halt", "engine", reason="probe test")
    assert kernel.bus.join(10)

    for headers in ({}, BEARER, {"Authorization": "Bearer wrong"}):
        reply = client.request("GET", path, headers=headers)
        assert reply.status == 200
        assert_words_only(reply.body)  # no state, no seq, no cash, no positions, no JSON
    head = client.request("HEAD", path)
    assert head.status == 200 and head.body == b""
    kernel.command("resume", "engine")
    assert kernel.bus.join(10)


def test_a_stalled_dispatch_loop_fails_both_probes_until_it_runs_again(
    client: Client, kernel: Kernel
) -> None:
    release = threading.Event()
    sub = kernel.bus.subscribe("system.probe_stall", lambda _e: release.wait(10), name="blocker")
    try:
        kernel.bus.publish(Heartbeat(component="probe_stall", count=1, ts_event=time.time_ns()))
        time.sleep(0.6)  # past bus.stall_warn_s (0.3 s) and a housekeeping round

        live = client.request("GET", "/livez")
        ready = client.request("GET", "/readyz")
        stalled_metrics = metrics(client)
    finally:
        release.set()
        sub.dispose()
    assert kernel.bus.join(10)

    assert (live.status, live.body) == (503, b"stalled\n")
    assert (ready.status, ready.body) == (503, b"not ready: stalled\n")
    assert value(stalled_metrics["seamless_live"]) == 0.0
    assert value(stalled_metrics["seamless_dispatch_busy_seconds"]) > 0.3
    assert client.request("GET", "/livez").status == 200
    assert value(metrics(client)["seamless_dispatch_stalls"], "_total") >= 1.0


# -- metrics ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic eDp5"}]
)
def test_metrics_need_the_api_token(client: Client, headers: dict[str, str]) -> None:
    reply = client.request("GET", "/metrics", headers=headers)

    assert reply.status == 401
    assert b"seamless_" not in reply.body
    assert "Bearer" in reply.headers["WWW-Authenticate"]


def test_metrics_report_rates_latency_depth_sessions_clients_and_notification_lag(
    client: Client, server: DashboardServer, kernel: Kernel
) -> None:
    before = metrics(client)["seamless_events"]
    for i in range(5):
        kernel.bus.publish(Heartbeat(component="metrics_probe", count=i, ts_event=time.time_ns()))
    kernel.command("halt", "engine", reason="metrics test")  # critical: committed at once
    assert kernel.bus.join(10)
    assert client.login("bob", PASSWORDS["bob"]).status in (200, 302)
    assert client.request("GET", "/").status == 200  # Bokeh makes the page's session
    stream = SseStream(server.port, "/api/events?topic=system.*", BEARER)
    try:
        deadline = time.monotonic() + 10
        while server.sse_hub.client_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)

        found = metrics(client)
    finally:
        stream.close()
        kernel.command("resume", "engine")
        assert kernel.bus.join(10)

    topic = "system.metrics_probe"
    events = found["seamless_events"]
    assert value(events, "_total", topic=topic) == 5.0
    with pytest.raises(AssertionError):
        value(before, "_total", topic=topic)  # the topic had no events before
    assert value(events, "_total", topic="commands") >= 1.0
    latency = found["seamless_commit_latency_seconds"]
    assert latency.type == "histogram"
    commits = value(latency, "_count")
    assert commits >= 1.0
    assert value(latency, "_bucket", le="+Inf") == commits
    assert 0.0 < value(latency, "_sum") < commits * 5.0
    assert value(found["seamless_inbox_depth"]) >= 0.0
    assert value(found["seamless_inbox_blocked_puts"], "_total") >= 0.0
    assert value(found["seamless_sessions"]) >= 1.0
    assert value(found["seamless_sse_clients"]) == 1.0
    assert value(found["seamless_ready"]) == 1.0 and value(found["seamless_live"]) == 1.0
    assert value(found["seamless_event_log_healthy"]) == 1.0
    lag = found["seamless_notify_lag_events"]
    (channel,) = {s.labels["channel"] for s in lag.samples}
    assert value(lag, channel=channel) >= 0.0
    assert value(found["seamless_notify_failures"], "_total", channel=channel) >= 0.0
    assert "seamless_notify_oldest_undelivered_seconds" in found


def test_an_operator_token_reads_metrics_too(client: Client) -> None:
    reply = client.request("GET", "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})

    assert reply.status == 200
    assert b"# TYPE seamless_events_total counter" in reply.body


# -- the real process ---------------------------------------------------------------------------
def test_seamless_serve_is_ready_for_systemd_when_readyz_is_and_says_stopping(
    tmp_path: Path,
) -> None:
    listener = NotifyListener(f"@seamless-serve-test-{uuid.uuid4().hex}")
    port = free_port()
    config = write_config(tmp_path, rate=50)
    args = ("serve", "--config", str(config), "--port", str(port))
    proc = listener.start(*args, folder=tmp_path, watchdog_usec=1_000_000)
    try:
        ready_at, ready_pid, _ = listener.wait_for("READY=1", timeout=90)
        client = Client(port)
        readyz = client.request("GET", "/readyz")
        livez = client.request("GET", "/livez")
        listener.wait_for("WATCHDOG=1", timeout=5, after=ready_at)
        proc.send_signal(signal.SIGTERM)
        _, stop_pid, _ = listener.wait_for("STOPPING=1", timeout=30)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()

    assert (readyz.status, readyz.body) == (200, b"ready\n")
    assert (livez.status, livez.body) == (200, b"ok\n")
    assert ready_pid == stop_pid == proc.pid
    # 143 (128 + SIGTERM) after the clean stop: the unit lists it in SuccessExitStatus.
    assert code in (0, 128 + signal.SIGTERM), (tmp_path / "err.txt").read_text()


# -- stopping (last: it stops the module's kernel) ----------------------------------------------
def test_readyz_fails_once_the_engine_stops_while_livez_stays_ok(
    client: Client, kernel: Kernel
) -> None:
    kernel.stop()

    ready = client.request("GET", "/readyz")
    live = client.request("GET", "/livez")

    assert (ready.status, ready.body) == (503, b"not ready: stopping\n")
    assert (live.status, live.body) == (200, b"ok\n")
