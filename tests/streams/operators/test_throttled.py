"""throttled: leading value at once, latest value at the end of each window, flush on completion."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from reactivex import Observable
from reactivex.testing import TestScheduler
from reactivex.testing.marbles import marbles_testing

from streams.errors import ConfigError
from streams.operators import throttled
from tests.streams.operators._support import (
    completed_at,
    error_of,
    nexts,
    on_completed,
    on_next,
    run,
    values,
)


def test_first_value_passes_at_once_and_latest_of_burst_trails() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        source = cold("a-b-c--------|")
        expected = exp("a----c-------|")

        results = start(source.pipe(throttled(5.0)))

    assert results == expected


def test_isolated_values_are_not_delayed() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        source = cold("a------b------c-|")
        expected = exp("a------b------c-|")

        results = start(source.pipe(throttled(3.0)))

    assert results == expected


def test_trailing_value_opens_the_next_window() -> None:
    # a@200 opens [200,203); b@202 trails at 203 and opens [203,206); c@204 trails at 206.
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        source = cold("a-b-c-------|")
        expected = exp("a--b--c-----|")

        results = start(source.pipe(throttled(3.0)))

    assert results == expected


def test_held_value_is_emitted_on_completion() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, "a"), on_next(202, "b"), on_next(203, "c"), on_completed(204)
    )

    messages = run(scheduler, lambda: source.pipe(throttled(10.0)))

    assert messages == [on_next(201, "a"), on_next(204, "c"), on_completed(204)]


def test_error_is_forwarded_at_once_and_held_value_dropped() -> None:
    boom = RuntimeError("feed died")
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-b-#", error=boom)

        results = start(source.pipe(throttled(10.0)))

    assert values(results) == ["a"]
    assert error_of(results) == (204.0, boom)


def test_flood_is_limited_to_one_value_per_interval_and_ends_on_the_latest() -> None:
    scheduler = TestScheduler()
    arrivals = [on_next(200.5 + 0.5 * i, i) for i in range(40)]  # 200.5 .. 220.0
    source = scheduler.create_hot_observable([*arrivals, on_completed(230)])

    messages = run(scheduler, lambda: source.pipe(throttled(2.0)))

    emitted = nexts(messages)
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(emitted)]
    assert emitted[0] == (200.5, 0)
    assert all(gap >= 2.0 for gap in gaps), gaps
    assert emitted[-1][1] == 39, "the last value of the flood must not be lost"
    assert emitted[-1][0] <= 220.0 + 2.0
    assert len(emitted) == 11
    assert completed_at(messages) == 230


def test_timedelta_interval_behaves_like_seconds() -> None:
    def emitted(interval: float | timedelta) -> list[tuple[float, str]]:
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(
            on_next(201, "a"), on_next(202, "b"), on_completed(210)
        )
        return nexts(run(scheduler, lambda: source.pipe(throttled(interval))))

    assert emitted(timedelta(seconds=3)) == emitted(3.0) == [(201, "a"), (204, "b")]


def test_disposal_cancels_the_pending_trailing_value() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, "a"), on_next(202, "b"))

    messages = run(scheduler, lambda: source.pipe(throttled(5.0)), disposed=204)

    assert messages == [on_next(201, "a")]


def test_scheduler_argument_wins_over_the_subscribers() -> None:
    own, other = TestScheduler(), TestScheduler()
    seen: list[str] = []
    source: Observable[str] = own.create_hot_observable(on_next(1, "a"), on_next(2, "b"))
    source.pipe(throttled(5.0, scheduler=own)).subscribe(seen.append, scheduler=other)

    own.advance_to(10)

    assert seen == ["a", "b"]


@pytest.mark.parametrize("bad", [0, -1.0, timedelta(0), "5", None, True])
def test_invalid_interval_is_refused_when_built(bad: object) -> None:
    with pytest.raises(ConfigError, match="interval"):
        throttled(bad)  # type: ignore[arg-type]
