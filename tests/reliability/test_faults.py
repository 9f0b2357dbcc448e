"""Feed faults (stall, flood, garbage) and component faults (a subscriber that raises, is slow
or blocks), on a real kernel with a DuckDB log and a threaded bus.

Policy under test (docs/reliability.md): one engine thread dispatches everything, so a
blocking subscriber delays every other one; the inbox is bounded and never conflates, so a
producer that outruns the engine is held back (back-pressure) and nothing meant for strategies
is lost, while a live feed that cannot wait drops, counts and records what it could not hand in
(``data_dropped``); a watchdog reports a dispatch round longer than ``bus.stall_warn_s``
(``error_raised`` from ``kernel.watchdog``, ``health()`` ``bus.stalled``); a feed quiet for
``feed.halt_after_s`` halts trading through risk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import parse_config
from engine.kernel import Kernel
from streams import topics
from streams.events import ErrorRaised, Event, Heartbeat, TickReceived
from streams.sources import FeedBase
from tests.streams.sources.helpers import wait_until


class ScriptedFeed(FeedBase):
    """Publishes ``ticks()`` as fast as asked; ``gate`` cleared = a stalled feed."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        make: Callable[[int], Event],
        offer: Callable[[Event], bool] | None = None,
    ) -> None:
        super().__init__(publish, name="scripted", known_symbols=["AAPL", "MSFT"], offer=offer)
        self.make = make
        self.gate = threading.Event()
        self.gate.set()
        self.interval_s = 0.002
        self.sent: list[Event] = []

    def _run(self) -> None:
        i = 0
        while not self._stopping:
            if not self.gate.wait(0.05):
                continue
            i += 1
            self.sent.append(self._emit(self.make(i)))
            if self.interval_s:
                self._stop_requested.wait(self.interval_s)


def _tick(i: int) -> TickReceived:
    return TickReceived(
        symbol="AAPL", bid=100 + i % 7, ask=100.5 + i % 7, size=1.0, ts_event=time.time_ns()
    )


def _kernel(
    tmp: Path, make: Callable[[int], Event] = _tick, *, live: bool = False, **sections: Any
) -> Kernel:
    data: dict[str, Any] = {
        "storage": {"db_path": str(tmp / "faults.duckdb")},
        "feed": {"kind": "none", "symbols": ["AAPL", "MSFT"]},
        "runner": {"autostart": False, "heartbeat_interval_s": 0.2},
        "broker": {"account_path": str(tmp / "broker.json")},
        "strategies": [],
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    kernel = Kernel.from_config(parse_config(data, env={}))
    offer = kernel.bus.offer if live else None  # a live socket feed cannot wait: it drops
    kernel.runner._feed_factory = lambda: ScriptedFeed(kernel.bus.publish, make, offer)
    return kernel.start()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


# -- feed faults ----------------------------------------------------------------------------
def test_a_stalled_feed_goes_stale_then_halts_trading(tmp: Path) -> None:
    kernel = _kernel(tmp, feed={"stale_after_s": 0.3, "halt_after_s": 2.0})
    try:
        kernel.command("start", "engine")
        assert wait_until(lambda: kernel.health()["feed"].get("published", 0) > 20)
        feed = kernel.runner.feed
        assert isinstance(feed, ScriptedFeed)
        assert not kernel.health()["feed"]["stale"]
        feed.gate.clear()  # the feed stalls
        assert wait_until(lambda: kernel.health()["feed"]["stale"], 3)
        age = kernel.health()["feed"]["last_event_age_s"]
        assert age >= 0.3 and kernel.store.get_state("trading.state") == "active"
        assert wait_until(lambda: kernel.store.get_state("trading.state") == "halted", 5)
        assert "feed stalled" in kernel.store.get_state("trading.reason")
        assert kernel.health()["feed"]["halted_by_stall"]
        assert wait_until(lambda: kernel.runner.status == "halted")
        halts = kernel.log.read(types=["trading_state_changed"])
        assert (
            getattr(halts[-1], "actor", None) == "engine"
        )  # committed and audited like an operator halt
        # Data again: no longer stale, but trading stays halted until an operator resets.
        feed.gate.set()
        assert wait_until(lambda: not kernel.health()["feed"]["stale"])
        time.sleep(0.3)
        assert kernel.store.get_state("trading.state") == "halted"
        kernel.command("reset", "engine")
        assert wait_until(lambda: kernel.store.get_state("trading.state") == "active")
    finally:
        kernel.stop()


def test_no_stall_halt_when_switched_off(tmp: Path) -> None:
    kernel = _kernel(tmp, feed={"stale_after_s": 0.2})  # halt_after_s: 0 (default)
    try:
        kernel.command("start", "engine")
        assert wait_until(lambda: kernel.health()["feed"].get("published", 0) > 5)
        kernel.runner.feed.gate.clear()  # type: ignore[union-attr]
        assert wait_until(lambda: kernel.health()["feed"]["stale"], 3)
        time.sleep(0.6)
        assert kernel.store.get_state("trading.state") == "active"
    finally:
        kernel.stop()


def _flood(kernel: Kernel) -> tuple[ScriptedFeed, list[int]]:
    """Start the feed as fast as its thread goes against a slow subscriber for 1.5 s; the
    inbox depths seen meanwhile. The feed is stopped and the engine drained on return."""
    kernel.command("start", "engine")
    assert wait_until(lambda: kernel.runner.feed is not None)
    feed = kernel.runner.feed
    assert isinstance(feed, ScriptedFeed)
    feed.interval_s = 0  # as fast as the feed thread can go
    depth = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        depth.append(len(kernel.bus.inbox))
        time.sleep(0.001)
    feed.gate.clear()
    time.sleep(0.1)
    assert kernel.bus.join(10)
    return feed, depth


def _logged_ticks(kernel: Kernel) -> list[Event]:
    kernel.log.flush()
    return kernel.log.read(types=["tick"])


def test_a_flooding_feed_is_held_back_and_every_tick_reaches_the_engine(tmp: Path) -> None:
    kernel = _kernel(tmp, bus={"capacity": 64, "max_batch": 16})
    slow = kernel.bus.subscribe("data.ticks.*", lambda e: time.sleep(0.0005), name="slow")
    try:
        feed, depth = _flood(kernel)

        assert max(depth) <= 64 and kernel.bus.inbox.high_water <= 64
        assert kernel.bus.inbox.blocked_puts > 0  # the feed outran the engine and waited
        assert feed.dropped == 0
        sent = [e.event_id for e in feed.sent if isinstance(e, TickReceived)]
        assert [e.event_id for e in _logged_ticks(kernel)] == sent  # every one, in order
        assert kernel.store.get_state("prices.AAPL.bid") == feed.sent[-1].bid  # type: ignore[attr-defined]
        assert kernel.health()["event_log"]["healthy"]
    finally:
        slow.dispose()
        kernel.stop()


def test_a_live_feed_that_cannot_wait_drops_counts_and_records_what_it_lost(tmp: Path) -> None:
    kernel = _kernel(tmp, live=True, bus={"capacity": 64, "max_batch": 16})
    slow = kernel.bus.subscribe("data.ticks.*", lambda e: time.sleep(0.0005), name="slow")
    try:
        feed, depth = _flood(kernel)
        feed.stop()  # the last drops are reported when the feed ends
        assert kernel.bus.join(10)

        assert max(depth) <= 64
        assert feed.dropped > 0
        reports = kernel.log.read(types=["data_dropped"])
        assert reports and sum(r.count for r in reports) == feed.dropped  # type: ignore[attr-defined]
        assert reports[-1].total == feed.dropped  # type: ignore[attr-defined]
        assert all(r.by_symbol == {"AAPL": r.count} for r in reports)  # type: ignore[attr-defined]
        sent = sum(1 for e in feed.sent if isinstance(e, TickReceived))
        assert len(_logged_ticks(kernel)) + feed.dropped == sent  # nothing lost silently
        assert kernel.health()["feed"]["dropped"] == feed.dropped
    finally:
        slow.dispose()
        kernel.stop()


def _garbage(i: int) -> Event:
    kinds = [
        dict(bid=float("nan"), ask=1.0),
        dict(bid=2.0, ask=1.0),
        dict(last=-5.0),
        dict(last=float("inf")),
        dict(bid=None, ask=None, last=None),
        dict(last="12"),
        dict(bid=1.0, ask=1.1),  # a good one
    ]
    symbol = "ZZZZ" if i % 11 == 0 else "AAPL"
    return TickReceived(symbol=symbol, ts_event=time.time_ns(), **kinds[i % len(kinds)])  # type: ignore[arg-type]


def test_garbage_data_becomes_counted_data_rejected_events(tmp: Path) -> None:
    kernel = _kernel(tmp, make=_garbage)
    try:
        kernel.command("start", "engine")
        assert wait_until(lambda: kernel.health()["feed"].get("rejected", 0) >= 100, 10)
        kernel.runner.feed.gate.clear()  # type: ignore[union-attr]
        time.sleep(0.1)
        kernel.bus.join(10)
        health = kernel.health()["feed"]
        rejected = kernel.log.read(types=["data_rejected"])
        assert len(rejected) == health["rejected"]  # every one recorded: nothing conflated
        fields = {e.field for e in rejected}  # type: ignore[attr-defined]
        assert {"bid", "last", "price", "symbol"} <= fields
        assert health["published"] > 0 and kernel.runner.status == "running"
    finally:
        kernel.stop()


# -- component faults -------------------------------------------------------------------------
def test_a_raising_subscriber_is_isolated_and_reported(tmp: Path) -> None:
    kernel = _kernel(tmp)
    got: list[Event] = []
    try:

        def bad(event: Event) -> None:
            raise ZeroDivisionError("boom")

        kernel.bus.subscribe("system.>", bad, name="bad")
        kernel.bus.subscribe("system.>", got.append, name="good")
        for i in range(50):
            kernel.bus.publish(Heartbeat(component="x", count=i))
            kernel.bus.join(5)
        assert len([e for e in got if getattr(e, "component", "") == "x"]) == 50
        assert kernel.bus.stats.subscriber_errors["bad"] >= 50
        errors = kernel.log.read(types=["error_raised"])
        assert any(e.component == "subscriber:bad" for e in errors)  # type: ignore[attr-defined]
    finally:
        kernel.stop()


def test_a_blocking_subscriber_is_reported_by_the_watchdog_and_producers_wait(
    tmp: Path,
) -> None:
    kernel = _kernel(tmp, bus={"stall_warn_s": 0.3, "capacity": 256})
    release = threading.Event()
    blocked = threading.Event()

    def block(event: Event) -> None:
        if not blocked.is_set():
            blocked.set()
            release.wait(10.0)  # released by the test; the timeout only guards a failure

    got: list[Event] = []
    try:
        kernel.bus.subscribe(topics.ticks("MSFT"), block, name="blocker")
        kernel.bus.subscribe(topics.ticks("AAPL"), got.append, name="other")
        kernel.bus.publish(TickReceived(symbol="MSFT", last=1.0, ts_event=time.time_ns()))
        assert blocked.wait(5)
        # The producer is held back by the bounded inbox meanwhile (back-pressure, no loss).
        producer = threading.Thread(
            target=lambda: [kernel.bus.publish(_tick(i)) for i in range(5_000)]
        )
        producer.start()
        assert wait_until(lambda: kernel.bus.inbox.blocked_puts > 0, 3)
        assert wait_until(lambda: kernel.health()["bus"]["stalled"], 3)
        assert kernel.health()["bus"]["dispatch_busy_s"] >= 0.3
        time.sleep(0.6)  # the watchdog looks every 0.25 s
        assert producer.is_alive() and len(kernel.bus.inbox) <= 256
        release.set()
        producer.join(10)
        assert kernel.bus.join(10)
        assert not kernel.health()["bus"]["stalled"]
        assert [e.bid for e in got] == [_tick(i).bid for i in range(5_000)]  # type: ignore[attr-defined]

        def reports() -> list[ErrorRaised]:
            return [
                e
                for e in kernel.log.read(types=["error_raised"])
                if isinstance(e, ErrorRaised) and e.component == "kernel.watchdog"
            ]

        assert wait_until(lambda: len(reports()) == 1, 3)
        time.sleep(0.5)
        assert len(reports()) == 1 and reports()[0].error_type == "DispatchStalled"
    finally:
        release.set()
        kernel.stop()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = {t.name for t in threading.enumerate()}
    yield
    time.sleep(0.05)
    leaked = {
        t.name
        for t in threading.enumerate()
        if t.name not in before
        and t.is_alive()
        and not t.name.startswith(("ThreadPool", "asyncio"))
    }
    assert not {n for n in leaked if n.startswith(("feed-", "bus-", "kernel-", "runner-"))}
