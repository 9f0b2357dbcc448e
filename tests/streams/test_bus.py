"""The event bus: routing, isolation, ordering, threading, the commit hook, and Rx observe."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from reactivex import operators as ops

from streams.bus import EventBus, Stage
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


def test_full_inbox_holds_the_publisher_and_delivers_every_market_event() -> None:
    release = threading.Event()
    bus = EventBus(threaded=True, capacity=4).start()
    ticks: list[TickReceived] = []

    def slow(event: Event) -> None:
        release.wait(5)
        if isinstance(event, TickReceived):
            ticks.append(event)

    bus.subscribe("data.ticks.*", slow)
    publisher = threading.Thread(
        target=lambda: [bus.publish(tick("AAPL", float(i))) for i in range(1, 101)]
    )
    publisher.start()
    deadline = time.monotonic() + 5
    while bus.inbox.blocked_puts == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    held = publisher.is_alive()
    release.set()
    publisher.join(10)
    assert bus.join(10)
    bus.stop()

    assert held and bus.inbox.blocked_puts > 0  # back-pressure: the publisher waited
    assert [t.last for t in ticks] == [float(i) for i in range(1, 101)]  # nothing conflated


def test_offer_refuses_when_the_inbox_is_full_and_queues_nothing() -> None:
    release = threading.Event()
    bus = EventBus(threaded=True, capacity=2).start()
    seen: list[Event] = []
    bus.subscribe("data.ticks.*", lambda e: (release.wait(5), seen.append(e)))
    bus.publish(tick("AAPL", 1.0))  # taken by the dispatcher, which then waits
    deadline = time.monotonic() + 5
    while len(bus.inbox) and time.monotonic() < deadline:
        time.sleep(0.005)

    offered = [bus.offer(tick("AAPL", float(i))) for i in range(2, 6)]
    release.set()
    assert bus.join(10)
    bus.stop()

    assert offered == [True, True, False, False]
    assert [e.last for e in seen] == [1.0, 2.0, 3.0]  # type: ignore[attr-defined]
    assert bus.inbox.refused_offers == 2


@pytest.mark.parametrize("threaded", [False, True])
def test_a_later_stage_sees_the_event_after_what_earlier_stages_caused(threaded: bool) -> None:
    bus = EventBus(threaded=threaded).start()
    log: list[str] = []

    def match(event: Event) -> None:
        log.append(f"match {event.last}")  # type: ignore[attr-defined]
        bus.publish(order(int(event.last)))  # type: ignore[attr-defined]  # a fill, say

    def on_order(event: Event) -> None:
        log.append(f"order {event.order_id}")  # type: ignore[attr-defined]
        bus.publish(order(100 + int(event.order_id), strategy="follow"))  # type: ignore[attr-defined]

    bus.subscribe("data.ticks.*", lambda e: log.append(f"react {e.last}"))  # type: ignore[attr-defined]
    bus.subscribe("data.ticks.*", lambda e: log.append(f"mark {e.last}"), stage=Stage.MARK)  # type: ignore[attr-defined]
    bus.subscribe("data.ticks.*", match, stage=Stage.MATCH)
    bus.subscribe("orders.s", on_order)
    bus.subscribe("orders.follow", lambda e: log.append(f"follow-up {e.order_id}"))  # type: ignore[attr-defined]

    bus.publish(tick("AAPL", 1.0))
    bus.publish(tick("AAPL", 2.0))
    assert bus.join(5)
    bus.stop()

    assert log == [
        "match 1.0",
        "order 1",
        "follow-up 101",  # the whole chain the match caused, before the next stage
        "mark 1.0",
        "react 1.0",
        "match 2.0",
        "order 2",
        "follow-up 102",
        "mark 2.0",
        "react 2.0",
    ]


def test_each_event_from_outside_completes_before_the_next_is_dispatched() -> None:
    bus = EventBus(threaded=True).start()
    log: list[str] = []
    gate = threading.Event()

    def on_tick(event: Event) -> None:
        gate.wait(5)  # both ticks are in the inbox by now: one batch
        log.append(f"tick {event.last}")  # type: ignore[attr-defined]
        bus.publish(order(int(event.last)))  # type: ignore[attr-defined]

    bus.subscribe("data.ticks.*", on_tick)
    bus.subscribe("orders.*", lambda e: log.append(f"order {e.order_id}"))  # type: ignore[attr-defined]
    bus.publish(tick("AAPL", 1.0))
    bus.publish(tick("AAPL", 2.0))
    gate.set()
    assert bus.join(5)
    bus.stop()

    assert log == ["tick 1.0", "order 1", "tick 2.0", "order 2"]


def test_publish_after_stop_raises(bus: EventBus) -> None:
    bus.stop()
    with pytest.raises(BusClosed):
        bus.publish(tick())
