"""WebSocketFeed against a real websocket server on 127.0.0.1: ticks, reconnects, garbage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Self

import pytest
from websockets.asyncio.server import ServerConnection, serve

from streams.clock import ManualClock
from streams.errors import ConfigError
from streams.events import Event, TickReceived
from streams.sources import (
    CONNECTING,
    RECONNECTING,
    RUNNING,
    STOPPED,
    WebSocketFeed,
    backoff_delay,
)
from streams.sources.validation import reason_code
from tests.streams.sources.helpers import Recorder, wait_until

START = 1_700_000_000_000_000_000
Script = Callable[[int, ServerConnection], Awaitable[None]]


class LocalServer:
    """A websocket server on 127.0.0.1 and a free port, run in its own thread.

    ``script(n, connection)`` plays connection number ``n`` (1-based); when it returns, the
    server closes that connection.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.received: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(5), "test server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set_result, None)
        self._thread.join(5)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        async with serve(self._handle, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._done

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        await self.script(self.connections, connection)


def quote(i: int, symbol: str = "AAPL", **extra: Any) -> str:
    price = 100.0 + i
    msg = {"symbol": symbol, "bid": price, "ask": price + 0.1, "last": price + 0.05, "size": 10}
    msg["ts"] = START + i
    msg.update(extra)
    return json.dumps(msg)


def feed_for(url: str, publish: Callable[[Event], None], **kw: Any) -> WebSocketFeed:
    options: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.05, "random": lambda: 0.5}
    options.update(kw)
    return WebSocketFeed(publish, ManualClock(START + 999), url, **options)


@contextlib.contextmanager
def serving(
    script: Script, publish: Callable[[Event], None], **kw: Any
) -> Iterator[tuple[LocalServer, WebSocketFeed]]:
    """A local server running ``script`` and a started feed on it (``feed_for`` options);
    the feed is stopped (and must stop in time) when the block ends."""
    with LocalServer(script) as server:
        feed = feed_for(server.url, publish, **kw)
        feed.start()
        try:
            yield server, feed
        finally:
            assert feed.stop(3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_messages_become_ticks_and_the_client_reconnects_after_the_server_drops() -> None:
    async def script(n: int, ws: ServerConnection) -> None:
        if n == 1:
            for i in range(3):
                await ws.send(quote(i))
            return  # the server closes this connection
        await ws.send(quote(3))
        await ws.send(quote(4, ts="2023-11-14T22:13:21Z"))
        await ws.wait_closed()

    rec = Recorder()
    with serving(script, rec) as (server, feed):
        assert wait_until(lambda: len(rec.ticks) == 5)
        assert feed.status == RUNNING
        assert (server.connections, feed.connects, feed.reconnects) == (2, 2, 1)

    ticks = rec.ticks
    assert [t.bid for t in ticks] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert [t.ts_event for t in ticks[:4]] == [START + i for i in range(4)]
    assert ticks[4].ts_event == 1_700_000_001_000_000_000
    assert {(t.symbol, t.source, t.size, t.ts_init) for t in ticks} == {
        ("AAPL", "websocket", 10.0, START + 999)
    }
    assert rec.rejected == [] and rec.errors == []
    assert feed.last_backoff_s == pytest.approx(0.02)
    assert feed.last_event_ns == START + 999
    assert feed.status == STOPPED


def test_garbage_becomes_data_rejected_and_the_feed_goes_on() -> None:
    garbage: list[str | bytes] = [
        "not json at all",
        b"\xff\xfe\x00",
        json.dumps({"symbol": "AAPL", "bid": "abc", "ask": 1.0}),
        json.dumps([1, {"symbol": "AAPL", "last": 5.0, "ts": START + 1}]),
        json.dumps({"bid": 1.0, "ask": 1.1}),
        json.dumps({"symbol": "AAPL", "last": 1.0, "ts": 1_700_000_000}),
        json.dumps({"symbol": "AAPL", "bid": 2.0, "ask": 1.0, "ts": START + 2}),
        json.dumps({"symbol": "AAPL", "last": 3.0, "ts": START + 1}),
        quote(10),
    ]

    async def script(n: int, ws: ServerConnection) -> None:
        for message in garbage:
            await ws.send(message)
        await ws.wait_closed()

    rec = Recorder()
    with serving(script, rec) as (_server, feed):
        assert wait_until(lambda: len(rec.ticks) == 2)
        assert wait_until(lambda: feed.messages == len(garbage))

    assert [t.last for t in rec.ticks] == [5.0, 110.05]
    rejected = [(r.field, reason_code(r.reason)) for r in rec.rejected]
    assert rejected == [
        ("message", "malformed"),
        ("message", "malformed"),
        ("bid", "not_a_number"),
        ("message", "malformed"),  # the 1 in the array; its neighbour went through
        ("symbol", "invalid_symbol"),
        ("ts", "bad_timestamp"),
        ("bid", "crossed"),
        ("ts_event", "duplicate"),
    ]
    assert rec.rejected[0].value == "not json at all"
    assert rec.rejected[2].value == "abc"
    assert {r.topic for r in rec.rejected} == {"data.rejected.websocket"}
    assert feed.validator.rejected["malformed"] == 3
    assert (feed.connects, feed.reconnects) == (1, 0)
    assert rec.errors == []


def test_an_unreachable_server_is_retried_with_backoff_and_stop_is_prompt() -> None:
    rec = Recorder()
    feed = feed_for(f"ws://127.0.0.1:{free_port()}", rec, open_timeout=1.0)
    assert feed.status == STOPPED
    feed.start()
    assert feed.status in (CONNECTING, RECONNECTING)

    assert wait_until(lambda: feed.reconnects >= 3)
    assert feed.status == RECONNECTING
    assert feed.connects == 0
    assert isinstance(feed.last_error, OSError)

    started = time.monotonic()
    assert feed.stop(3)
    assert time.monotonic() - started < 1.0
    assert feed.status == STOPPED
    assert rec.events == []


def test_a_failing_publish_is_reported_and_the_feed_reconnects() -> None:
    async def script(n: int, ws: ServerConnection) -> None:
        await ws.send(quote(n))
        await ws.wait_closed()

    rec = Recorder()
    calls = {"ticks": 0}

    def publish(event: Event) -> None:
        if isinstance(event, TickReceived):
            calls["ticks"] += 1
            if calls["ticks"] == 1:
                raise RuntimeError("subscriber exploded")
        rec(event)

    with serving(script, publish) as (_server, feed):
        assert wait_until(lambda: len(rec.ticks) == 1)

    assert len(rec.errors) == 1
    assert rec.errors[0].error_type == "RuntimeError"
    assert rec.errors[0].component == "websocket"
    assert feed.connects == 2
    assert rec.ticks[0].bid == 102.0  # from the second connection


def test_subscribe_messages_are_sent_and_a_paused_feed_drops_messages() -> None:
    paused = threading.Event()

    async def script(n: int, ws: ServerConnection) -> None:
        server.received.append(str(await ws.recv()))
        await asyncio.to_thread(paused.wait, 5)
        for i in range(3):
            await ws.send(quote(i))
        await ws.wait_closed()

    rec = Recorder()
    subscribe = [{"op": "subscribe", "symbols": ["AAPL"]}]
    with serving(script, rec, subscribe=subscribe) as (server, feed):
        feed.pause()
        paused.set()
        assert wait_until(lambda: feed.skipped_while_paused == 3)
        assert feed.status == "paused"
        feed.resume()
        assert feed.status == RUNNING

    assert json.loads(server.received[0]) == {"op": "subscribe", "symbols": ["AAPL"]}
    assert rec.ticks == []


def test_a_custom_mapper_maps_ignores_and_fails_safely() -> None:
    def mapper(message: Any) -> TickReceived | None:
        if message.get("type") == "heartbeat":
            return None
        return TickReceived(symbol=message["s"], last=float(message["p"]), ts_event=message["t"])

    messages = [
        json.dumps({"type": "heartbeat"}),
        json.dumps({"s": "MSFT", "p": "300.5", "t": START}),
        json.dumps({"p": 1}),
        json.dumps({"s": "MSFT", "p": 301.0, "t": START + 1}),
    ]

    async def script(n: int, ws: ServerConnection) -> None:
        for message in messages:
            await ws.send(message)
        await ws.wait_closed()

    rec = Recorder()
    with serving(script, rec, mapper=mapper, known_symbols={"MSFT"}) as (_server, feed):
        assert wait_until(lambda: feed.messages == 4 and len(rec.ticks) == 2)

    assert [t.last for t in rec.ticks] == [300.5, 301.0]
    assert len(rec.rejected) == 1
    assert reason_code(rec.rejected[0].reason) == "malformed"
    assert "KeyError" in rec.rejected[0].reason


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    def delays(rand: float) -> list[float]:
        return [
            backoff_delay(a, initial=0.5, maximum=10.0, jitter=0.2, random=lambda: rand)
            for a in range(1, 8)
        ]

    assert delays(0.5) == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
    assert delays(0.0) == pytest.approx([0.4, 0.8, 1.6, 3.2, 6.4, 8.0, 8.0])
    assert delays(0.999999) == pytest.approx([0.6, 1.2, 2.4, 4.8, 9.6, 10.0, 10.0], rel=1e-4)
    assert backoff_delay(10_000, initial=0.5, maximum=30.0, jitter=0.0) == 30.0


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="ws://"):
        WebSocketFeed(Recorder(), None, "http://example.com")
    with pytest.raises(ConfigError, match="backoff"):
        WebSocketFeed(Recorder(), None, "ws://x", backoff_initial=5, backoff_max=1)
