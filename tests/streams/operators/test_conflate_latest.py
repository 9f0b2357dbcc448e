"""conflate_latest: latest per key per interval, first-arrival key order, counts, flush, errors."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.testing import TestScheduler
from reactivex.testing.marbles import marbles_testing

from streams.errors import ConfigError
from streams.events import TickReceived
from streams.operators import ConflationCounter, conflate_latest
from tests.streams.operators._support import (
    completed_at,
    error_of,
    nexts,
    on_completed,
    on_error,
    on_next,
    run,
    values,
)


def symbol(value: tuple[str, int]) -> str:
    return value[0]


def test_latest_per_key_at_the_end_of_each_interval_in_first_arrival_order() -> None:
    scheduler = TestScheduler()
    counter = ConflationCounter()
    source = scheduler.create_hot_observable(
        on_next(201, ("A", 1)),
        on_next(202, ("B", 1)),
        on_next(203, ("A", 2)),
        on_next(204, ("A", 3)),
        on_next(211, ("B", 2)),
        on_completed(217),
    )

    messages = run(
        scheduler, lambda: source.pipe(conflate_latest(symbol, 5.0, on_conflated=counter))
    )

    # A first arrived before B, so it comes first although it was updated last.
    assert messages == [
        on_next(205, ("A", 3)),
        on_next(205, ("B", 1)),
        on_next(215, ("B", 2)),  # the empty interval ending at 210 emitted nothing
        on_completed(217),
    ]
    assert (counter.total, counter.windows) == (2, 1)


def test_each_interval_starts_a_fresh_key_order() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, ("A", 1)),
        on_next(202, ("B", 1)),
        on_next(206, ("B", 2)),
        on_next(207, ("A", 2)),
    )

    messages = run(scheduler, lambda: source.pipe(conflate_latest(symbol, 5.0)), disposed=212)

    assert values(messages) == [("A", 1), ("B", 1), ("B", 2), ("A", 2)]


def test_callback_gets_the_count_dropped_in_each_interval() -> None:
    scheduler = TestScheduler()
    reported: list[tuple[float, int]] = []
    arrivals = [on_next(200.5 + 0.25 * i, ("A" if i % 2 else "B", i)) for i in range(12)]
    source = scheduler.create_hot_observable([*arrivals, on_next(206, ("C", 0)), on_completed(209)])

    def report(dropped: int) -> None:
        reported.append((scheduler.clock, dropped))

    messages = run(
        scheduler, lambda: source.pipe(conflate_latest(symbol, 5.0, on_conflated=report))
    )

    # 12 values of two keys in [200, 205): 10 dropped; C alone in the next interval: none
    # dropped, so no call.
    assert reported == [(205, 10)]
    assert values(messages) == [("B", 10), ("A", 11), ("C", 0)]
    assert completed_at(messages) == 209


def test_held_values_are_flushed_on_completion() -> None:
    counter = ConflationCounter()
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-b-A|")

        results = start(source.pipe(conflate_latest(str.lower, 10.0, on_conflated=counter)))

    assert results == [on_next(205, "A"), on_next(205, "b"), on_completed(205)]
    assert counter.total == 1


def test_empty_intervals_emit_nothing() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("---------a")

        results = start(source.pipe(conflate_latest(str.lower, 2.0)))

    assert results == [on_next(210, "a")]


def test_ticks_conflate_per_symbol() -> None:
    scheduler = TestScheduler()
    ticks = [
        TickReceived(symbol="AAPL", last=1.0),
        TickReceived(symbol="MSFT", last=2.0),
        TickReceived(symbol="AAPL", last=1.5),
    ]
    source = scheduler.create_hot_observable(
        [on_next(201 + i, t) for i, t in enumerate(ticks)] + [on_completed(209)]
    )

    messages = run(scheduler, lambda: source.pipe(conflate_latest(lambda t: t.symbol, 5.0)))

    assert [(t.symbol, t.last) for t in values(messages)] == [("AAPL", 1.5), ("MSFT", 2.0)]


def test_failing_key_function_goes_to_on_error() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, ("A", 1)), on_next(202, ("B", 1)), on_next(203, ("C", 1))
    )

    def key(value: tuple[str, int]) -> str:
        if value[0] == "B":
            raise KeyError("no symbol")
        return value[0]

    messages = run(scheduler, lambda: source.pipe(conflate_latest(key, 5.0)))

    failure = error_of(messages)
    assert failure is not None
    assert failure[0] == 202
    assert isinstance(failure[1], KeyError)
    assert nexts(messages) == []


def test_unhashable_key_goes_to_on_error() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, {"symbol": "A"}))

    def key(value: dict[str, Any]) -> Any:
        return [value["symbol"]]

    messages = run(scheduler, lambda: source.pipe(conflate_latest(key, 5.0)))

    failure = error_of(messages)
    assert failure is not None
    assert isinstance(failure[1], TypeError)


def test_failing_callback_goes_to_on_error_after_the_values() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("metrics down")
    source = scheduler.create_hot_observable(
        on_next(201, ("A", 1)), on_next(202, ("A", 2)), on_next(206, ("A", 3))
    )

    def report(dropped: int) -> None:
        raise boom

    messages = run(
        scheduler, lambda: source.pipe(conflate_latest(symbol, 5.0, on_conflated=report))
    )

    assert nexts(messages) == [(205, ("A", 2))]
    assert error_of(messages) == (205, boom)


def test_source_error_drops_held_values() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("feed lost")
    source = scheduler.create_hot_observable(
        on_next(201, ("A", 1)), on_error(203, boom), on_next(204, ("A", 2))
    )

    messages = run(scheduler, lambda: source.pipe(conflate_latest(symbol, 5.0)))

    assert messages == [on_error(203, boom)]
    assert error_of(messages) == (203, boom)


def test_invalid_interval_is_refused_when_built() -> None:
    with pytest.raises(ConfigError, match="interval"):
        conflate_latest(symbol, 0)
