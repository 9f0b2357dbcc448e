"""sampled: latest value on a fixed grid, nothing for quiet ticks, flush on completion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from reactivex.testing import TestScheduler
from reactivex.testing.marbles import marbles_testing

from streams.errors import ConfigError
from streams.operators import sampled
from tests.streams.operators._support import (
    error_of,
    nexts,
    on_completed,
    on_error,
    on_next,
    run,
    values,
)


def test_latest_value_per_tick_and_nothing_on_quiet_ticks() -> None:
    # Ticks at 205, 210, 215, 220; a and c are overwritten before their tick; 215 is quiet.
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        source = cold("a-b---c-d----------e--")
        expected = exp("-----b----d---------e")

        results = start(source.pipe(sampled(5.0)))

    assert results == expected


def test_unsampled_value_is_flushed_on_completion() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, "a"), on_next(202, "b"), on_next(207, "c"), on_completed(208)
    )

    messages = run(scheduler, lambda: source.pipe(sampled(5.0)))

    assert messages == [on_next(205, "b"), on_next(208, "c"), on_completed(208)]


def test_completion_without_new_value_completes_at_once_without_repeat() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, "a"), on_completed(207))

    messages = run(scheduler, lambda: source.pipe(sampled(5.0)))

    assert messages == [on_next(205, "a"), on_completed(207)]


def test_ticks_stay_on_the_grid_of_the_subscription_time() -> None:
    scheduler = TestScheduler()
    arrivals = [on_next(200.1 + i, i) for i in range(30)]
    source = scheduler.create_hot_observable(arrivals)

    messages = run(scheduler, lambda: source.pipe(sampled(timedelta(seconds=2))), disposed=230.5)

    assert [t for t, _ in nexts(messages)] == [200.0 + 2 * k for k in range(1, 16)]
    assert values(messages)[-1] == 29


def test_error_is_forwarded_at_once() -> None:
    boom = ValueError("bad tick")
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, "a"), on_next(204, "b"), on_error(205, boom)
    )

    messages = run(scheduler, lambda: source.pipe(sampled(3.0)))

    assert nexts(messages) == [(203, "a")]
    assert error_of(messages) == (205, boom)


def test_no_ticks_after_disposal() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, "a"), on_next(206, "b"))

    messages = run(scheduler, lambda: source.pipe(sampled(3.0)), disposed=205)

    assert messages == [on_next(203, "a")]
    assert scheduler.clock >= 205


@pytest.mark.parametrize("bad", [0, -2, timedelta(seconds=-1)])
def test_invalid_interval_is_refused_when_built(bad: float | timedelta) -> None:
    with pytest.raises(ConfigError, match="interval"):
        sampled(bad)
