"""debounced: emit after quiet, max_wait bounds the hold time under a flood, flush on completion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from reactivex.testing import TestScheduler
from reactivex.testing.marbles import marbles_testing
from reactivex.testing.recorded import Recorded

from streams.errors import ConfigError
from streams.operators import debounced
from tests.streams.operators._support import (
    completed_at,
    error_of,
    nexts,
    on_completed,
    on_next,
    run,
    values,
)


def test_emits_latest_value_after_the_burst_goes_quiet() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        source = cold("a-b-c------d-----|")
        expected = exp("-------c------d--|")

        results = start(source.pipe(debounced(3.0)))

    assert results == expected


def test_held_value_is_flushed_on_completion() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-b|")

        results = start(source.pipe(debounced(5.0)))

    assert results == [on_next(203, "b"), on_completed(203)]


def test_error_is_forwarded_at_once_and_held_value_dropped() -> None:
    boom = RuntimeError("broken")
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("a-#", error=boom)

        results = start(source.pipe(debounced(5.0, max_wait=6.0)))

    assert values(results) == []
    assert error_of(results) == (202.0, boom)


def flood() -> list[Recorded[Any]]:
    """One value per second at 201..218 (the value is its arrival time), completed at 230."""
    return [*[on_next(t, t) for t in range(201, 219)], on_completed(230)]


def test_plain_debounce_starves_under_a_flood() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(flood())

    messages = run(scheduler, lambda: source.pipe(debounced(2.0)))

    assert nexts(messages) == [(220, 218)]


def test_max_wait_emits_during_a_never_ending_burst() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(flood())

    messages = run(scheduler, lambda: source.pipe(debounced(2.0, max_wait=4.5)))

    # Bursts start at 201, 206, 211, 216 (first value after an emission); each is cut at
    # +4.5 s, except the last, whose quiet timer (218 + 2) runs out before 216 + 4.5.
    assert nexts(messages) == [(205.5, 205), (210.5, 210), (215.5, 215), (220, 218)]
    assert completed_at(messages) == 230


def test_no_value_is_held_longer_than_max_wait() -> None:
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


def test_max_wait_does_not_change_quiet_bursts() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, "a"), on_next(202, "b"), on_next(210, "c"), on_completed(220)
    )

    messages = run(scheduler, lambda: source.pipe(debounced(2.0, max_wait=timedelta(seconds=5))))

    assert messages == [on_next(204, "b"), on_next(212, "c"), on_completed(220)]


def test_disposal_cancels_both_timers() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, "a"), on_next(202, "b"))

    messages = run(scheduler, lambda: source.pipe(debounced(3.0, max_wait=4.0)), disposed=203)

    assert messages == []


def test_max_wait_shorter_than_duetime_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_wait"):
        debounced(2.0, max_wait=1.0)


@pytest.mark.parametrize("bad", [0, -1.0])
def test_invalid_durations_are_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="duetime"):
        debounced(bad)
    with pytest.raises(ConfigError, match="max_wait"):
        debounced(1.0, max_wait=bad)
