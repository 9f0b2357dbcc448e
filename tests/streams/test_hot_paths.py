"""The fast paths of the backtest hot loop keep the semantics of the slow ones they replaced."""

from __future__ import annotations

import json
import os

import pytest

from persistence.codec import EventCodec, dumps
from streams import topics
from streams.bus import EventBus
from streams.errors import EventError
from streams.events import BarReceived, Event, PnlUpdated, SignalDetected, TickReceived
from streams.events import base as events_base


def test_event_ids_are_unique_across_pool_refills() -> None:
    ids = [events_base.new_event_id() for _ in range(3 * events_base._ID_BATCH + 7)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_reuses_the_parents_ids() -> None:
    events_base.new_event_id()  # the pool now holds ids the child must not hand out
    parent_next = list(events_base._ID_POOL)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the id it gets and leave at once
        os.write(write, events_base.new_event_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_id) == 32
    assert child_id not in parent_next


def test_with_seq_copies_every_field_and_sets_seq() -> None:
    bar = BarReceived(symbol="AAPL", open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0)
    copy = bar.with_seq(7)
    assert copy.seq == 7
    assert copy.to_dict() == bar.to_dict() | {"seq": 7}
    assert type(copy) is BarReceived
    assert bar.seq == 0  # the original is untouched


@pytest.mark.parametrize(
    "event",
    [
        PnlUpdated(realized=1e-5, unrealized=-0.0, daily=1e300, equity=123456.789),
        PnlUpdated(realized=3, unrealized=True, daily=0.0, equity=1.0),  # ints in float fields
        BarReceived(symbol="A", open=1.0, high=2.0, low=0.5, close=1.5, source='q\u00e9"%s'),
        SignalDetected(strategy="s", symbol="X", side="buy", strength=1.0, reason="a%sb\n\t"),
        TickReceived(symbol="X", bid=None, ask=2.0, last=None),
    ],
)
def test_template_encoder_writes_exactly_what_json_dumps_writes(event: Event) -> None:
    encoded = EventCodec().for_class(type(event)).encode(event)
    assert encoded == dumps(event.payload())
    assert json.loads(encoded) == event.payload()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_template_encoder_still_refuses_non_finite_floats(bad: float) -> None:
    event = PnlUpdated(realized=0.0, unrealized=bad, daily=0.0, equity=0.0)
    with pytest.raises(EventError, match="pnl_updated payload"):
        EventCodec().for_class(PnlUpdated).encode(event)


def test_a_subscription_disposed_during_a_fan_out_gets_nothing_more() -> None:
    bus = EventBus(threaded=False)
    seen: list[str] = []
    subs = {}

    def first(event: Event) -> None:
        seen.append("first")
        subs["second"].dispose()

    subs["first"] = bus.subscribe("data.ticks.*", first)
    subs["second"] = bus.subscribe("data.ticks.*", lambda e: seen.append("second"))
    bus.subscribe("data.ticks.*", lambda e: seen.append("third"))

    bus.publish(TickReceived(symbol="X", last=1.0))

    assert seen == ["first", "third"]
    assert bus.subscriber_count("data.ticks.*") == 2


def test_delivery_order_is_pattern_then_subscription_order() -> None:
    bus = EventBus(threaded=False)
    seen: list[str] = []
    bus.subscribe("data.>", lambda e: seen.append("data.> 1"))
    bus.subscribe("data.ticks.*", lambda e: seen.append("ticks 1"))
    bus.subscribe("data.>", lambda e: seen.append("data.> 2"))
    bus.subscribe(topics.ticks("X"), lambda e: seen.append("X"))

    bus.publish(TickReceived(symbol="X", last=1.0))

    assert seen == ["data.> 1", "data.> 2", "ticks 1", "X"]
