"""staleness: FRESH/STALE changes only, stale without data, completion and error handling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reactivex.testing import TestScheduler
from reactivex.testing.marbles import marbles_testing

from streams.errors import ConfigError
from streams.operators import Staleness, staleness
from tests.streams.operators._support import (
    completed_at,
    error_of,
    nexts,
    on_completed,
    on_error,
    on_next,
    run,
)


def summary(messages: list[Any]) -> list[tuple[float, bool, float, Any]]:
    """``(time, stale, age seconds, last value)`` of every emitted status."""
    out = []
    for t, status in nexts(messages):
        assert isinstance(status, Staleness)
        out.append((t, status.stale, status.age.total_seconds(), status.last_value))
    return out


def test_stale_fresh_stale_transitions() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, "x"), on_next(203, "y"), on_next(210, "z"), on_next(220, "w")
    )

    messages = run(scheduler, lambda: source.pipe(staleness(5.0)), disposed=224)

    assert summary(messages) == [
        (201, False, 0.0, "x"),
        (208, True, 5.0, "y"),  # quiet since y at 203
        (210, False, 0.0, "z"),
        (215, True, 5.0, "z"),
        (220, False, 0.0, "w"),
    ]


def test_values_while_fresh_only_restart_the_timer() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable([on_next(201 + i, i) for i in range(10)])

    messages = run(scheduler, lambda: source.pipe(staleness(timedelta(seconds=5))))

    assert summary(messages) == [(201, False, 0.0, 0), (215, True, 5.0, 9)]


def test_nothing_at_subscription_and_stale_when_the_feed_never_starts() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("--------")

        results = start(source.pipe(staleness(5.0)))

    assert len(results) == 1
    first = results[0]
    status = first.value.value
    assert first.time == 205
    assert status.stale is True
    assert status.has_value is False
    assert status.last_value is None
    assert status.since == datetime.fromtimestamp(200, tz=UTC)
    assert status.age == timedelta(seconds=5)


def test_fresh_source_that_completes_goes_stale_then_completes() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-|")

        results = start(source.pipe(staleness(5.0)))

    assert summary(results) == [(200, False, 0.0, "a"), (205, True, 5.0, "a")]
    assert completed_at(results) == 205


def test_stale_source_that_completes_completes_at_once() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, "a"), on_completed(210))

    messages = run(scheduler, lambda: source.pipe(staleness(5.0)))

    assert summary(messages) == [(201, False, 0.0, "a"), (206, True, 5.0, "a")]
    assert completed_at(messages) == 210


def test_error_is_forwarded_at_once_and_no_stale_follows() -> None:
    scheduler = TestScheduler()
    boom = ConnectionError("feed lost")
    source = scheduler.create_hot_observable(on_next(201, "a"), on_error(202, boom))

    messages = run(scheduler, lambda: source.pipe(staleness(5.0)))

    assert summary(messages) == [(201, False, 0.0, "a")]
    assert error_of(messages) == (202, boom)


def test_status_timestamps_in_nanoseconds() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201.5, "a"))

    messages = run(scheduler, lambda: source.pipe(staleness(2.0)), disposed=210)

    fresh, stale = (status for _, status in nexts(messages))
    assert fresh.at_ns == fresh.since_ns == 201_500_000_000
    assert stale.at_ns == 203_500_000_000
    assert stale.since_ns == 201_500_000_000


def test_status_is_immutable() -> None:
    status: Staleness[int] = Staleness(True, datetime.now(UTC), datetime.now(UTC))

    with pytest.raises(AttributeError):
        status.stale = False  # type: ignore[misc]


def test_invalid_max_age_is_refused_when_built() -> None:
    with pytest.raises(ConfigError, match="max_age"):
        staleness(-1)
