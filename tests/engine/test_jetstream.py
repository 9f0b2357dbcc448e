"""The JetStream bridge against a real nats-server and a real DuckDB event log (no mocks).

Each test starts its own private nats-server (``nats_server`` fixture, JetStream file store in
a temp folder) and checks the stream's contents directly with nats-py: every committed event
exactly once, in seq order, whatever was killed or stopped on the way.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from engine.config import parse_config
from engine.jetstream import OutboxRelay, RemoteEventSource, follow_book, start_relay
from engine.jetstream.wire import SEQ_HEADER, decode, encode, encode_rows, subject_for, token
from persistence import EventLog
from persistence.codec import EVENT_COLUMNS
from streams.bus import EventBus
from streams.errors import TransportError
from streams.events import Event
from testkit.services.nats import NatsServer
from tests.factories import fill, tick
from tests.factories import signal as signal_event

SOURCE = "book1"
REPO = Path(__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------------------
def stream_messages(url: str, stream: str = "SEAMLESS") -> list[tuple[str, dict[str, str], bytes]]:
    """Every message in ``stream`` (subject, headers, payload), in stream order."""

    async def read() -> list[tuple[str, dict[str, str], bytes]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            state = (await js.stream_info(stream)).state
            out = []
            for seq in range(state.first_seq, state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                out.append((msg.subject or "", dict(msg.headers or {}), msg.data or b""))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def delete_stream(url: str, stream: str = "SEAMLESS") -> None:
    async def run() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(run())


def assert_stream_is_log(url: str, log: EventLog, source: str = SOURCE) -> None:
    """The stream holds exactly the committed events of ``log``: once each, in seq order."""
    expected = log.read(0, until_seq=log.committed_seq)
    msgs = stream_messages(url)
    seqs = [int(h[SEQ_HEADER]) for _, h, _ in msgs]
    assert seqs == [e.seq for e in expected], "stream seqs differ from the log (lost/dup/order)"
    assert [decode(p) for _, _, p in msgs] == expected
    assert [s for s, _, _ in msgs] == [subject_for("seamless", source, e.topic) for e in expected]


def mixed_event(n: int) -> Event:
    if n % 7 == 0:
        return fill(price=100.0 + n, qty=float(n % 5 + 1))
    if n % 5 == 0:
        return signal_event()
    return tick(symbol="AAPL" if n % 2 else "MSFT", last=100.0 + n / 100)


def append_events(log: EventLog, count: int, start: int = 0) -> int:
    for n in range(start, start + count):
        log.append(mixed_event(n))
    return log.flush()


class Collector:
    """An on_event callback that records what it gets (thread-safe enough for list.append)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(tmp_path / "events.duckdb", flush_interval_s=0.02) as log:
        yield log


def wait_until(predicate: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- wire ------------------------------------------------------------------------------------
def test_subjects_mirror_topics_and_are_always_valid_tokens() -> None:
    assert subject_for("seamless", "book1", "fills.sma") == "seamless.book1.fills.sma"
    assert subject_for("seamless", "my book", "data..x*") == "seamless.my_book.data._.x_"
    assert token(">") == "_" and token("") == "_"
    with pytest.raises(TransportError, match="subject_prefix"):
        OutboxRelay(EventLog(":memory:"), "nats://127.0.0.1:1", subject_prefix="a b")


# -- relay -----------------------------------------------------------------------------------
def test_committed_events_reach_a_remote_consumer_in_order_with_identical_content(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # A long flush interval: appended events stay uncommitted until flush() commits them.
    with EventLog(tmp_path / "slow.duckdb", flush_interval_s=30.0, batch_size=100_000) as log:
        got = Collector()
        relay = OutboxRelay(log, nats_server.url, source=SOURCE).start()
        remote = RemoteEventSource(
            nats_server.url, "dash1", filter_subject="seamless.book1.>", on_event=got
        ).start()
        try:
            assert wait_until(lambda: relay.stats()["connected"])
            for n in range(50):
                log.append(tick(last=100.0 + n))  # not critical: committed on flush only
            time.sleep(0.3)
            assert log.committed_seq == 0
            assert relay.stats()["relayed"] == 0, "an uncommitted event was relayed"
            last = append_events(log, 250, start=50)
            assert relay.wait_caught_up(15)
            assert remote.wait_for_seq(SOURCE, last, 15), remote.stats()
            expected = log.read()
            assert got.events == expected  # same events, same seq, same fields, same order
            assert relay.stats()["lag"] == 0 and relay.stats()["relayed"] == last
            assert remote.stats()["duplicates"] == 0
        finally:
            remote.stop()
            relay.stop()
        assert_stream_is_log(nats_server.url, log)


def test_resending_stores_nothing_twice_and_a_lost_stream_heals(
    nats_server: NatsServer, event_log: EventLog
) -> None:
    last = append_events(event_log, 200)
    relay = OutboxRelay(event_log, nats_server.url, source=SOURCE).start()
    try:
        assert relay.wait_caught_up(15)
        relay.resend_from(0)  # a forced re-send of everything
        assert wait_until(lambda: relay.stats()["duplicates"] >= last), relay.stats()
        assert len(stream_messages(nats_server.url)) == last
        relay.stop()
        # A new relay (position lost) asks JetStream where it ends and re-sends nothing.
        relay = OutboxRelay(event_log, nats_server.url, source=SOURCE).start()
        assert relay.wait_caught_up(15)
        assert relay.stats()["relayed"] == 0 and relay.stats()["duplicates"] == 0
        # The JetStream store is lost: the relay re-creates the stream and re-sends the log.
        delete_stream(nats_server.url)
        append_events(event_log, 20, start=200)
        assert wait_until(lambda: relay.stats()["relayed"] >= last + 20), relay.stats()
        assert relay.wait_caught_up(15)
    finally:
        relay.stop()
    assert_stream_is_log(nats_server.url, event_log)


def test_relay_killed_mid_relay_resumes_without_loss_or_duplicates(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    path = tmp_path / "crash.duckdb"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.jetstream_child", str(path), nats_server.url, SOURCE],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        relayed = 0
        deadline = time.monotonic() + 30
        while relayed < 1000 and time.monotonic() < deadline:
            line = child.stdout.readline().decode()
            assert line, child.stderr.read().decode() if child.stderr else "child died"
            relayed = int(line.split()[3])
        child.send_signal(signal.SIGKILL)  # mid-relay: the child is still appending
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert relayed >= 1000
    with EventLog(path) as log:
        committed = log.committed_seq
        assert committed > relayed  # the relay was behind the log when it died
        relay = OutboxRelay(log, nats_server.url, source=SOURCE).start()
        try:
            assert relay.wait_caught_up(20), relay.stats()
            assert relay.stats()["relayed"] <= committed - relayed + 50
        finally:
            relay.stop()
        assert_stream_is_log(nats_server.url, log)


def test_nats_down_for_a_while_engine_keeps_logging_and_relay_catches_up(
    nats_server: NatsServer, event_log: EventLog
) -> None:
    got = Collector()
    relay = OutboxRelay(event_log, nats_server.url, source=SOURCE, max_backoff_s=0.5).start()
    remote = RemoteEventSource(nats_server.url, "dash2", on_event=got).start()
    stop = threading.Event()

    def engine() -> None:  # keeps trading and logging whatever NATS does
        n = 0
        while not stop.is_set():
            for _ in range(20):
                event_log.append(mixed_event(n))
                n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=engine)
    writer.start()
    try:
        assert wait_until(lambda: relay.stats()["relayed"] > 100)
        nats_server.kill()  # SIGKILL: stopped, and as abruptly as a crash
        down_at = event_log.committed_seq
        time.sleep(2.5)
        stats = relay.stats()
        assert event_log.healthy and event_log.committed_seq > down_at + 500
        assert not stats["connected"] and stats["lag"] > 0
        assert stats["last_error"]
        nats_server.start()
        time.sleep(1.0)
        stop.set()
        writer.join()
        last = event_log.flush()
        assert relay.wait_caught_up(30), relay.stats()
        assert remote.wait_for_seq(SOURCE, last, 30), remote.stats()
        assert [e.seq for e in got.events] == list(range(1, last + 1))
        assert got.events == event_log.read()
    finally:
        stop.set()
        writer.join()
        remote.stop()
        relay.stop()
    assert_stream_is_log(nats_server.url, event_log)


def test_nats_not_up_when_the_engine_starts(nats_server: NatsServer, event_log: EventLog) -> None:
    nats_server.stop()
    relay = OutboxRelay(event_log, nats_server.url, source=SOURCE, max_backoff_s=0.3).start()
    try:
        last = append_events(event_log, 100)
        assert wait_until(lambda: relay.stats()["last_error"] is not None, 10)
        assert not relay.stats()["connected"] and relay.stats()["lag"] == last
        assert "cannot connect" in relay.stats()["last_error"]
        nats_server.start()
        assert relay.wait_caught_up(15), relay.stats()
        assert relay.stats()["last_error"] is None
    finally:
        relay.stop()
    assert_stream_is_log(nats_server.url, event_log)


# -- remote consumers ------------------------------------------------------------------------
def test_durable_consumer_resumes_where_it_left_off(
    nats_server: NatsServer, event_log: EventLog
) -> None:
    relay = OutboxRelay(event_log, nats_server.url, source=SOURCE).start()
    first, second = Collector(), Collector()
    try:
        last = append_events(event_log, 100)
        remote = RemoteEventSource(nats_server.url, "dash3", on_event=first).start()
        assert remote.wait_for_seq(SOURCE, last, 15)
        remote.stop()  # disconnected: events keep coming meanwhile
        last = append_events(event_log, 150, start=100)
        assert relay.wait_caught_up(15)
        remote = RemoteEventSource(nats_server.url, "dash3", on_event=second).start()
        assert remote.wait_for_seq(SOURCE, last, 15), remote.stats()
        time.sleep(0.2)
        remote.stop()
        assert [e.seq for e in first.events] == list(range(1, 101))
        assert [e.seq for e in second.events] == list(range(101, last + 1))
        assert first.events + second.events == event_log.read()
    finally:
        relay.stop()


def test_follow_book_starts_after_a_given_seq(
    nats_server: NatsServer, event_log: EventLog, tmp_path: Path
) -> None:
    config = parse_config(
        {
            "bus": {"transport": "jetstream", "nats_url": nats_server.url},
            "storage": {"stream": SOURCE},
            "cluster": {"node_id": "mirror-a"},
        }
    )
    relay = start_relay(config, event_log)
    other_log = EventLog(tmp_path / "book2.duckdb").open()  # another book, interleaved
    other = OutboxRelay(other_log, nats_server.url, source="book2").start()
    got = Collector()
    try:
        for start in range(0, 300, 50):
            append_events(other_log, 50, start=start)
            last = append_events(event_log, 50, start=start)
        assert relay.wait_caught_up(15) and other.wait_caught_up(15)
        following = follow_book(config, 120, got)
        assert following.wait_for_seq(SOURCE, last, 15), str(following.stats())
        following.close()
        # Restarted from an older point: the durable is moved back, not trusted blindly.
        again = Collector()
        following = follow_book(config, 280, again)
        assert following.wait_for_seq(SOURCE, last, 15)
        following.close()
    finally:
        other.stop()
        other_log.close()
        relay.stop()
    assert [e.seq for e in got.events] == list(range(121, last + 1))
    assert [e.seq for e in again.events] == list(range(281, last + 1))
    assert got.events == event_log.read(120)


def test_remote_events_feed_an_ordinary_local_bus_subscriber(
    nats_server: NatsServer, event_log: EventLog
) -> None:
    bus = EventBus(name="remote").start()
    fills: list[Event] = []
    bus.subscribe("fills.*", fills.append)
    relay = OutboxRelay(event_log, nats_server.url, source=SOURCE).start()
    remote = RemoteEventSource(nats_server.url, "dash4", bus=bus).start()
    try:
        last = append_events(event_log, 200)
        assert remote.wait_for_seq(SOURCE, last, 15)
        assert bus.join(5)
        expected = event_log.read(topic="fills.*")
        assert expected and fills == expected
    finally:
        remote.stop()
        relay.stop()
        bus.stop()


def test_stored_rows_encode_like_events(event_log: EventLog) -> None:
    for n in range(40):
        event_log.append(mixed_event(n))
    event_log.append(tick(last=1.5, correlation_id="c1", causation_id="c0"), wait=True)
    rows = event_log.read_df()
    fast = encode_rows({c: rows[c].tolist() for c in EVENT_COLUMNS}, "seamless", SOURCE)
    events = event_log.read()
    for message, event in zip(fast, events, strict=True):
        generic = encode(event, "seamless", SOURCE)
        assert json.loads(message.payload) == json.loads(generic.payload) == event.to_dict()
        assert decode(message.payload) == event
        assert (message.subject, message.headers) == (generic.subject, generic.headers)
        assert message.headers == {
            "Nats-Msg-Id": event.event_id,
            "Seamless-Seq": str(event.seq),
            "Seamless-Source": SOURCE,
        }
