"""The operators that hold the latest value (streams/operators/_latest.py), one section each.

* throttled: leading value at once, latest value at the end of each window, flush on completion.
* sampled: latest value on a fixed grid, nothing for quiet ticks, flush on completion.
* debounced: emit after quiet, max_wait bounds the hold time under a flood, flush on completion.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from reactivex import Observable
from reactivex.testing import TestScheduler
from reactivex.testing.marbles import marbles_testing
from reactivex.testing.recorded import Recorded

from streams.errors import ConfigError
from streams.operators import debounced, sampled, throttled
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

#: An operator for ``Observable.pipe``, as the three build.
Operator = Callable[[Observable[Any]], Observable[Any]]

# -- what each operator emits for a given input (the shared contract, side by side) ------

MARBLES = [
    pytest.param(throttled(5.0), "a-b-c--------|", "a----c-------|", id="throttled-burst"),
    pytest.param(throttled(3.0), "a------b------c-|", "a------b------c-|", id="throttled-isolated"),
    # a@200 opens [200,203); b@202 trails at 203 and opens [203,206); c@204 trails at 206.
    pytest.param(throttled(3.0), "a-b-c-------|", "a--b--c-----|", id="throttled-trail-opens"),
    # Ticks at 205, 210, 215, 220; a and c are overwritten before their tick; 215 is quiet.
    pytest.param(sampled(5.0), "a-b---c-d----------e--", "-----b----d---------e", id="sampled"),
    pytest.param(debounced(3.0), "a-b-c------d-----|", "-------c------d--|", id="debounced"),
]


@pytest.mark.parametrize(("operator", "source", "expected"), MARBLES)
def test_emits_as_the_marbles_say(operator: Operator, source: str, expected: str) -> None:
    """throttled: first value at once, the latest of a burst trails and opens the next window;
    sampled: the latest value per tick, nothing on quiet ticks; debounced: the latest value
    once a burst goes quiet."""
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        values_in = cold(source)
        wanted = exp(expected)

        results = start(values_in.pipe(operator))

    assert results == wanted


HOT = [
    pytest.param(
        throttled(10.0),
        [on_next(201, "a"), on_next(202, "b"), on_next(203, "c"), on_completed(204)],
        1000,
        [on_next(201, "a"), on_next(204, "c"), on_completed(204)],
        id="throttled-held-value-emitted-on-completion",
    ),
    pytest.param(
        throttled(5.0),
        [on_next(201, "a"), on_next(202, "b")],
        204,
        [on_next(201, "a")],
        id="throttled-disposal-cancels-the-trailing-value",
    ),
    pytest.param(
        sampled(5.0),
        [on_next(201, "a"), on_next(202, "b"), on_next(207, "c"), on_completed(208)],
        1000,
        [on_next(205, "b"), on_next(208, "c"), on_completed(208)],
        id="sampled-unsampled-value-flushed-on-completion",
    ),
    pytest.param(
        sampled(5.0),
        [on_next(201, "a"), on_completed(207)],
        1000,
        [on_next(205, "a"), on_completed(207)],
        id="sampled-completion-without-new-value-does-not-repeat",
    ),
    pytest.param(
        sampled(3.0),
        [on_next(201, "a"), on_next(206, "b")],
        205,
        [on_next(203, "a")],
        id="sampled-no-ticks-after-disposal",
    ),
    pytest.param(
        debounced(2.0, max_wait=timedelta(seconds=5)),
        [on_next(201, "a"), on_next(202, "b"), on_next(210, "c"), on_completed(220)],
        1000,
        [on_next(204, "b"), on_next(212, "c"), on_completed(220)],
        id="debounced-max-wait-does-not-change-quiet-bursts",
    ),
    pytest.param(
        debounced(3.0, max_wait=4.0),
        [on_next(201, "a"), on_next(202, "b")],
        203,
        [],
        id="debounced-disposal-cancels-both-timers",
    ),
]


@pytest.mark.parametrize(("operator", "arrivals", "disposed", "expected"), HOT)
def test_emits_as_the_table_says(
    operator: Operator, arrivals: list[Recorded[Any]], disposed: float, expected: list[Any]
) -> None:
    """Held values are emitted on completion and never after disposal."""
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(arrivals)

    messages = run(scheduler, lambda: source.pipe(operator), disposed=disposed)

    assert messages == expected
    assert scheduler.clock >= disposed


@pytest.mark.parametrize("make", [throttled, sampled])
@pytest.mark.parametrize("bad", [0, -1.0, timedelta(0), timedelta(seconds=-1), "5", None, True])
def test_invalid_interval_is_refused_when_built(make: Callable[..., Operator], bad: object) -> None:
    with pytest.raises(ConfigError, match="interval"):
        make(bad)


# -- throttled -----------------------------------------------------------------------


def test_throttled_error_is_forwarded_at_once_and_held_value_dropped() -> None:
    boom = RuntimeError("feed died")
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-b-#", error=boom)

        results = start(source.pipe(throttled(10.0)))

    assert values(results) == ["a"]
    assert error_of(results) == (204.0, boom)


def test_throttled_flood_is_limited_to_one_value_per_interval_and_ends_on_the_latest() -> None:
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


def test_throttled_timedelta_interval_behaves_like_seconds() -> None:
    def emitted(interval: float | timedelta) -> list[tuple[float, str]]:
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(
            on_next(201, "a"), on_next(202, "b"), on_completed(210)
        )
        return nexts(run(scheduler, lambda: source.pipe(throttled(interval))))

    assert emitted(timedelta(seconds=3)) == emitted(3.0) == [(201, "a"), (204, "b")]


def test_throttled_scheduler_argument_wins_over_the_subscribers() -> None:
    own, other = TestScheduler(), TestScheduler()
    seen: list[str] = []
    source: Observable[str] = own.create_hot_observable(on_next(1, "a"), on_next(2, "b"))
    source.pipe(throttled(5.0, scheduler=own)).subscribe(seen.append, scheduler=other)

    own.advance_to(10)

    assert seen == ["a", "b"]


# -- sampled -------------------------------------------------------------------------


def test_sampled_ticks_stay_on_the_grid_of_the_subscription_time() -> None:
    scheduler = TestScheduler()
    arrivals = [on_next(200.1 + i, i) for i in range(30)]
    source = scheduler.create_hot_observable(arrivals)

    messages = run(scheduler, lambda: source.pipe(sampled(timedelta(seconds=2))), disposed=230.5)

    assert [t for t, _ in nexts(messages)] == [200.0 + 2 * k for k in range(1, 16)]
    assert values(messages)[-1] == 29


def test_sampled_error_is_forwarded_at_once() -> None:
    boom = ValueError("bad tick")
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, "a"), on_next(204, "b"), on_error(205, boom)
    )

    messages = run(scheduler, lambda: source.pipe(sampled(3.0)))

    assert nexts(messages) == [(203, "a")]
    assert error_of(messages) == (205, boom)


# -- debounced -----------------------------------------------------------------------


def test_debounced_held_value_is_flushed_on_completion() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-b|")

        results = start(source.pipe(debounced(5.0)))

    assert results == [on_next(203, "b"), on_completed(203)]


def test_debounced_error_is_forwarded_at_once_and_held_value_dropped() -> None:
    boom = RuntimeError("broken")
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-#", error=boom)

        results = start(source.pipe(debounced(5.0, max_wait=6.0)))

    assert values(results) == []
    assert error_of(results) == (202.0, boom)


def flood() -> list[Recorded[Any]]:
    """One value per second at 201..218 (the value is its arrival time), completed at 230."""
    return [*[on_next(t, t) for t in range(201, 219)], on_completed(230)]


def test_debounced_plain_debounce_starves_under_a_flood() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(flood())

    messages = run(scheduler, lambda: source.pipe(debounced(2.0)))

    assert nexts(messages) == [(220, 218)]


def test_debounced_max_wait_emits_during_a_never_ending_burst() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(flood())

    messages = run(scheduler, lambda: source.pipe(debounced(2.0, max_wait=4.5)))

    # Bursts start at 201, 206, 211, 216 (first value after an emission); each is cut at
    # +4.5 s, except the last, whose quiet timer (218 + 2) runs out before 216 + 4.5.
    assert nexts(messages) == [(205.5, 205), (210.5, 210), (215.5, 215), (220, 218)]
    assert completed_at(messages) == 230


def test_debounced_no_value_is_held_longer_than_max_wait() -> None:
    scheduler = TestScheduler()
    arrivals = [on_next(200.3 + 0.7 * i, 200.3 + 0.7 * i) for i in range(60)]
    source = scheduler.create_hot_observable(arrivals)

    messages = run(scheduler, lambda: source.pipe(debounced(1.0, max_wait=3.0)))

    emitted = nexts(messages)
    emitted_at = [t for t, _ in emitted]
    for arrival in (200.3 + 0.7 * i for i in range(60)):
        first_after = min(t for t in emitted_at if t >= arrival)
        assert first_after - arrival <= 3.0 + 1e-9
    assert all(value <= t for t, value in emitted)


def test_debounced_max_wait_shorter_than_duetime_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_wait"):
        debounced(2.0, max_wait=1.0)


@pytest.mark.parametrize("bad", [0, -1.0])
def test_debounced_invalid_durations_are_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="duetime"):
        debounced(bad)
    with pytest.raises(ConfigError, match="max_wait"):
        debounced(1.0, max_wait=bad)
