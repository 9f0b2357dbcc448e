"""Two engine nodes, JetStream and a dashboard on another port (real processes and servers).

Nodes a1 (book alpha) and b1 (book beta) are real ``seamless run`` processes on one private
PostgreSQL log with ``bus.transport: jetstream`` (a private nats-server); a third process is
``seamless serve --mirror`` for alpha on its own port, with a viewer API token.

- The dashboard shows both nodes' books (``/api/cluster`` and its Cluster tab in a real
  browser: owner, epoch, account) and streams
  alpha over ``/api/events`` with the same semantics as on the node: ``id:`` = seq, replay
  from the log after ``Last-Event-ID``, then live (here from JetStream), no gap, no duplicate.
- nats-server stopped for a while: both nodes keep trading and logging; once it is back the
  relays catch up.
- a1 SIGKILLed: standby a2 takes alpha over (epoch 2, shown on the dashboard) and its relay
  resumes from the last event JetStream holds. After the nodes stop cleanly, JetStream holds
  every committed event of both books exactly once (its message count equals the log's),
  and the dashboard's mirror ends at the log's last seq with the same account and positions
  as a restore of the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from engine.access import new_api_token
from persistence import restore
from persistence.pg import PostgresEventLog
from state import state_to_dict
from testkit import free_port
from testkit.dashboard import CHROMIUM_ARGS, chromium_path
from testkit.engine_process import SEAMLESS, env
from testkit.services.nats import NatsServer
from tests.engine.test_takeover import WAIT_S, Node, write_config


def node_config(
    folder: Path, dsn: str, url: str, book: str, node: str, seed: int, standby: bool = False
) -> Path:
    """A node's config (see test_takeover) with the JetStream transport switched on."""
    path = write_config(folder, dsn, book, node, seed=seed, standby=standby)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["bus"] = {"transport": "jetstream", "nats_url": url}
    config["feed"]["rate"] = 60
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class Dashboard:
    """``seamless serve --mirror`` on a free port, read with a viewer API token."""

    def __init__(self, folder: Path, node_config_path: Path, url: str) -> None:
        self.token, token_hash = new_api_token()
        config = yaml.safe_load(node_config_path.read_text(encoding="utf-8"))
        config["cluster"] = {"node_id": "dash1"}
        config["access"] = {"api_tokens": {token_hash: {"user": "monitor", "role": "viewer"}}}
        config["dashboard"] = {"prefs_dir": str(folder / "prefs")}
        path = folder / "dashboard.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.err = folder / "dashboard.err"
        with self.err.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [SEAMLESS, "serve", "--mirror", "--config", str(path), "--port", str(self.port)],
                cwd=folder,
                env=env(),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def get(self, path: str) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dashboard exited: {self.err.read_text()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if check():
                    return
            time.sleep(0.2)
        raise AssertionError(f"dashboard: no {what} in {timeout} s: {self.err.read_text()[-3000:]}")

    def cluster(self) -> dict[str, dict[str, Any]]:
        status, body = self.get("/api/cluster")
        assert status == 200, body
        return {row["book"]: row for row in body["books"]}

    def mirrored_seq(self) -> int:
        status, body = self.get("/api/health")
        return int(body["event_log"]["mirrored_seq"]) if status == 200 else -1

    def read_events(
        self, last_id: int, seconds: float, count: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """SSE frames (id, event) of ``/api/events?topic=>`` after ``last_id`` for ``seconds``,
        or until ``count`` frames have come."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "text/event-stream",
            "Last-Event-ID": str(last_id),
        }
        conn.request(
            "GET", "/api/events?" + urllib.parse.urlencode({"topic": ">"}), headers=headers
        )
        response = conn.getresponse()
        assert response.status == 200
        frames: list[tuple[int, dict[str, Any]]] = []
        frame_id, deadline = 0, time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and (count is None or len(frames) < count):
                line = response.fp.readline().decode()
                if line.startswith("id:"):
                    frame_id = int(line[3:].strip())
                elif line.startswith("data:") and frame_id:
                    frames.append((frame_id, json.loads(line[5:])))
                    frame_id = 0
        except TimeoutError:
            pass
        finally:
            conn.close()
        return frames

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for proc in started:
        if isinstance(proc, Node):
            proc.kill()
        else:
            proc.stop()


def jetstream_counts(url: str, stream: str = "SEAMLESS") -> dict[str, int]:
    """Messages JetStream holds per book (the second token of ``seamless.<book>.<topic>``)."""

    async def count() -> dict[str, int]:
        client = await nats.connect(url)
        try:
            info = await client.jetstream().stream_info(stream, subjects_filter="seamless.>")
        finally:
            await client.close()
        books: dict[str, int] = {}
        for subject, n in (info.state.subjects or {}).items():
            book = subject.split(".")[1]
            books[book] = books.get(book, 0) + n
        return books

    return asyncio.run(count())


def browse_cluster_tab(port: int) -> dict[str, str]:
    """Log in as the dev viewer in headless Chromium, open the Cluster tab: {book: node}."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/login", timeout=30_000)
            page.fill("#username", "viewer")
            page.fill("#password", "viewer")
            page.click("button[type=submit], input[type=submit]")
            page.locator(".bk-tab", has_text="Cluster").first.click(timeout=30_000)
            rows = page.locator("[data-testid=cluster-table] tr[data-book]")
            rows.nth(1).wait_for(timeout=30_000)
            return {
                rows.nth(i).get_attribute("data-book") or "": rows.nth(i)
                .locator("td[data-col=owner]")
                .inner_text()
                for i in range(rows.count())
            }
        finally:
            browser.close()


def stored(dsn: str, book: str) -> tuple[list[Any], dict[str, Any]]:
    with PostgresEventLog(dsn, stream=book) as log:
        return log.read(), state_to_dict(restore(log).state)


def test_two_nodes_jetstream_outage_and_a_remote_dashboard(
    pg_dsn: str, nats_server: NatsServer, tmp_path: Path, processes: list[Any]
) -> None:
    url = nats_server.url
    alpha_cfg = node_config(tmp_path, pg_dsn, url, "alpha", "a1", seed=11)
    a1 = Node(tmp_path, "a1", alpha_cfg)
    b1 = Node(tmp_path, "b1", node_config(tmp_path, pg_dsn, url, "beta", "b1", seed=23))
    processes.extend([a1, b1])
    a1.wait_trade()
    b1.wait_trade()

    dash = Dashboard(tmp_path, alpha_cfg, url)
    processes.append(dash)
    dash.wait_until("cluster", lambda: {"alpha", "beta"} <= set(dash.cluster()))
    dash.wait_until("live alpha", lambda: dash.mirrored_seq() > 0)
    rows = dash.cluster()
    assert (rows["alpha"]["owner"], rows["alpha"]["epoch"]) == ("a1", 1)
    assert (rows["beta"]["owner"], rows["beta"]["epoch"]) == ("b1", 1)
    assert rows["alpha"]["seq"] > 0 and rows["beta"]["seq"] > 0
    status, body = dash.get("/api/command")  # GET is not a command, and no command is allowed
    assert status in (401, 403, 405), body
    assert browse_cluster_tab(dash.port) == {"alpha": "a1", "beta": "b1"}

    # /api/events on the dashboard: replay from the log after Last-Event-ID, then live.
    frames = dash.read_events(last_id=0, seconds=3.0)
    ids = [frame_id for frame_id, _ in frames]
    assert ids and ids == list(range(1, len(ids) + 1)), ids[:20]
    assert all(event["seq"] == frame_id for frame_id, event in frames)
    seq_before_live = dash.mirrored_seq()

    # NATS goes away for a while: both nodes keep trading and logging.
    trades = (a1.trades(), b1.trades())
    with PostgresEventLog(pg_dsn, stream="alpha") as log:
        logged_before = log.count()
    nats_server.stop()
    a1.wait_trade(after=trades[0])
    b1.wait_trade(after=trades[1])
    with PostgresEventLog(pg_dsn, stream="alpha") as log:
        assert log.count() > logged_before
    nats_server.start()
    dash.wait_until("mirror past the outage", lambda: dash.mirrored_seq() > seq_before_live)

    # SIGKILL alpha's node: its standby takes the book over after the TTL, and its relay goes
    # on from the last event JetStream holds (a1's relay may have died behind its log).
    a2 = Node(
        tmp_path, "a2", node_config(tmp_path, pg_dsn, url, "alpha", "a2", seed=11, standby=True)
    )
    processes.append(a2)
    a2.wait_for("standby", lambda: "standing by for book 'alpha'" in a2.stderr())
    a1.kill()
    a2.wait_trading(2)
    a2.wait_trade()
    dash.wait_until("alpha's new owner", lambda: dash.cluster()["alpha"]["owner"] == "a2")
    assert dash.cluster()["alpha"]["epoch"] == 2

    # Stop the nodes cleanly: their relays send the last committed events, then stop.
    assert a2.stop() == 0, a2.stderr()
    assert b1.stop() == 0, b1.stderr()
    alpha, alpha_state = stored(pg_dsn, "alpha")
    beta, _ = stored(pg_dsn, "beta")
    assert jetstream_counts(url) == {"alpha": len(alpha), "beta": len(beta)}

    dash.wait_until("mirror at the log's end", lambda: dash.mirrored_seq() == alpha[-1].seq)
    status, body = dash.get("/api/state")
    assert status == 200
    mirrored = body["state"]
    assert mirrored["account"]["cash"] == pytest.approx(alpha_state["account"]["cash"])
    assert {s: p["qty"] for s, p in mirrored["positions"].items()} == {
        s: p["qty"] for s, p in alpha_state["positions"].items()
    }
    replayed = dash.read_events(last_id=alpha[-1].seq - 5, seconds=15, count=5)
    assert [i for i, _ in replayed] == [e.seq for e in alpha[-5:]]
    assert [ev["event_id"] for _, ev in replayed] == [e.event_id for e in alpha[-5:]]
