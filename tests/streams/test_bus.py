"""The event bus: routing, isolation, ordering, threading, the commit hook, and Rx observe."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from reactivex import operators as ops

from streams.bus import EventBus
from streams.errors import BusClosed
from streams.events import ErrorRaised, Event, OrderAccepted, TickReceived


def tick(symbol: str = "AAPL", last: float = 1.0) -> TickReceived:
    return TickReceived(symbol=symbol, last=last)


def order(i: int, strategy: str = "s") -> OrderAccepted:
    return OrderAccepted(order_id=str(i), strategy=strategy, symbol="AAPL")


@pytest.fixture(params=["sync", "threaded"])
def bus(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    b = EventBus(threaded=request.param == "threaded").start()
    yield b
    b.stop()


def test_wildcard_routing(bus: EventBus) -> None:
    ticks: list[Event] = []
    everything: list[Event] = []
    bus.subscribe("data.ticks.*", ticks.append)
    bus.subscribe(">", everything.append)
    bus.publish(tick("AAPL"))
    bus.publish(tick("MSFT"))
    bus.publish(order(1))
    assert bus.join(5)
    assert [e.topic for e in ticks] == ["data.ticks.aapl", "data.ticks.msft"]
    assert len(everything) == 3


def test_dispose_stops_delivery_and_releases_subscription(bus: EventBus) -> None:
    got: list[Event] = []
    sub = bus.subscribe("data.>", got.append)
    assert bus.subscriber_count() == 1
    bus.publish(tick())
    bus.join(5)
    sub.dispose()
    sub.dispose()  # idempotent
    bus.publish(tick())
    bus.join(5)
    assert len(got) == 1
    assert bus.subscriber_count() == 0


def test_failing_subscriber_is_isolated_and_reported(bus: EventBus) -> None:
    good: list[Event] = []
    errors: list[Event] = []

    def explode(event: Event) -> None:
        raise ValueError("bad subscriber")

    bus.subscribe("data.>", explode, name="exploder")
    bus.subscribe("data.>", good.append)
    bus.subscribe("system.errors", errors.append)
    for i in range(10):
        bus.publish(tick(last=float(i + 1)))
    assert bus.join(5)
    assert len(good) == 10
    assert bus.stats.subscriber_errors == {"exploder": 10}
    assert len(errors) == 10
    first = errors[0]
    assert isinstance(first, ErrorRaised)
    assert first.component == "subscriber:exploder"
    assert first.error_type == "ValueError" and first.details["topic"] == "data.ticks.aapl"


def test_failing_error_subscriber_does_not_loop(bus: EventBus) -> None:
    def explode(event: Event) -> None:
        raise RuntimeError("always")

    bus.subscribe(">", explode, name="all")
    bus.publish(tick())
    assert bus.join(5)
    # the tick fails once, the error report about it fails once, and that is the end
    assert bus.stats.subscriber_errors["all"] == 2


def test_events_published_during_dispatch_run_after_the_current_round(bus: EventBus) -> None:
    seen: list[str] = []

    def react(event: Event) -> None:
        seen.append(f"A:{event.type}")
        if isinstance(event, TickReceived):
            bus.publish(order(1))

    bus.subscribe(">", react)
    bus.subscribe(">", lambda e: seen.append(f"B:{e.type}"))
    bus.publish(tick())
    bus.join(5)
    assert seen == ["A:tick", "B:tick", "A:order_accepted", "B:order_accepted"]


def test_after_round_runs_once_the_round_and_its_follow_ups_are_delivered(
    bus: EventBus,
) -> None:
    log: list[str] = []

    def on_tick(event: Event) -> None:
        assert isinstance(event, TickReceived)
        log.append(f"tick {event.symbol}")
        bus.after_round(lambda: log.append("round ended"))
        if event.symbol == "AAPL":
            bus.publish(order(1))  # a follow-up in the same round

    def boom() -> None:
        raise RuntimeError("boom")

    def on_after_round_raises(event: Event) -> None:
        bus.after_round(boom)  # logged; the others still run

    def on_order(event: Event) -> None:
        assert isinstance(event, OrderAccepted)
        log.append(f"order {event.order_id}")

    bus.subscribe("data.ticks.*", on_tick)
    bus.subscribe("data.ticks.msft", on_after_round_raises)
    bus.subscribe("orders.*", on_order)
    bus.publish(tick("AAPL"))
    assert bus.join(5)
    assert log == ["tick AAPL", "order 1", "round ended"]
    bus.publish(tick("MSFT"))
    assert bus.join(5)
    assert log[3:] == ["tick MSFT", "round ended"]
    with pytest.raises(RuntimeError, match="dispatch thread"):
        bus.after_round(lambda: None)


def test_observe_composes_with_rx_and_isolates_failures(bus: EventBus) -> None:
    prices: list[float] = []
    bus.observe("data.ticks.*").pipe(
        ops.map(lambda e: e.price),  # type: ignore[attr-defined]
        ops.filter(lambda p: p > 2),
    ).subscribe(prices.append)

    def explode(value: object) -> None:
        raise KeyError("x")

    bus.observe("data.ticks.*", name="fragile").subscribe(explode)
    for p in (1.0, 3.0, 5.0):
        bus.publish(tick(last=p))
    bus.join(5)
    assert prices == [3.0, 5.0]
    assert bus.stats.subscriber_errors["fragile"] == 3


class RecordingHook:
    """A commit/apply hook that assigns seqs and drops duplicate ids, like the state store."""

    def __init__(self) -> None:
        self.seq = 0
        self.ids: set[str] = set()
        self.committed: list[Event] = []
        self.applied: list[int] = []
        self.idle_calls = 0

    def commit(self, events: Sequence[Event]) -> list[Event]:
        out = []
        for event in events:
            if event.event_id in self.ids:
                continue
            self.ids.add(event.event_id)
            self.seq += 1
            out.append(event.with_seq(self.seq))
        self.committed.extend(out)
        return out

    def apply(self, event: Event) -> None:
        self.applied.append(event.seq)

    def idle(self) -> None:
        self.idle_calls += 1


@pytest.mark.parametrize("threaded", [False, True])
def test_hook_commits_before_subscribers_see_and_drops_duplicates(threaded: bool) -> None:
    hook = RecordingHook()
    bus = EventBus(threaded=threaded, hook=hook).start()
    seen: list[tuple[int, bool]] = []
    bus.subscribe(">", lambda e: seen.append((e.seq, e.seq in hook.applied)))
    first = order(1)
    bus.publish(first)
    bus.publish(first)  # same event_id: a duplicate
    bus.publish(order(2))
    bus.join(5)
    bus.stop()
    assert seen == [(1, True), (2, True)]
    assert bus.stats.duplicates == 1
    assert hook.idle_calls >= 1


def test_many_publisher_threads_each_event_exactly_once_in_commit_order() -> None:
    hook = RecordingHook()
    bus = EventBus(threaded=True, capacity=64, hook=hook).start()
    delivered: list[Event] = []
    bus.subscribe("orders.*", delivered.append)
    threads = [
        threading.Thread(target=lambda t=t: [bus.publish(order(i, f"t{t}")) for i in range(500)])
        for t in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bus.join(10)
    bus.stop()
    assert len(delivered) == 8 * 500
    assert len({e.event_id for e in delivered}) == 8 * 500
    assert [e.seq for e in delivered] == list(range(1, 4001))
    assert [e.event_id for e in delivered] == [e.event_id for e in hook.committed]
    for t in range(8):  # each publisher's own order is preserved
        mine = [int(e.order_id) for e in delivered if e.topic == f"orders.t{t}"]
        assert mine == list(range(500))


def test_full_inbox_conflates_market_data_but_never_drops_critical() -> None:
    release = threading.Event()
    bus = EventBus(threaded=True, capacity=4).start()
    ticks: list[TickReceived] = []
    orders: list[Event] = []

    def slow(event: Event) -> None:
        release.wait(5)
        if isinstance(event, TickReceived):
            ticks.append(event)

    bus.subscribe("data.ticks.*", slow)
    bus.subscribe("orders.*", orders.append)
    for i in range(1, 101):
        bus.publish(tick("AAPL", float(i)))
    publisher = threading.Thread(target=lambda: [bus.publish(order(i)) for i in range(20)])
    publisher.start()
    release.set()
    publisher.join(10)
    assert bus.join(10)
    bus.stop()
    assert len(orders) == 20
    prices = [t.last for t in ticks]
    assert prices[-1] == 100.0  # the latest value always arrives
    assert prices == sorted(prices)  # never an older value after a newer one
    assert len(prices) + bus._inbox.conflated == 100


def test_publish_after_stop_raises(bus: EventBus) -> None:
    bus.stop()
    with pytest.raises(BusClosed):
        bus.publish(tick())
