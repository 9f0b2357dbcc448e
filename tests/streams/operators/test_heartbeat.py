"""heartbeat / heartbeats: periodic beats on the injected clock, counts, timestamps, failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from reactivex.scheduler import HistoricalScheduler
from reactivex.testing import TestScheduler
from reactivex.testing.marbles import marbles_testing

from streams.clock import NS_PER_S, ManualClock
from streams.errors import ConfigError, EventError
from streams.events import Heartbeat
from streams.operators import heartbeat, heartbeats, staleness
from tests.streams.operators._support import error_of, nexts, run, values


def test_heartbeats_carry_component_count_and_clock_time() -> None:
    scheduler = TestScheduler()

    messages = run(scheduler, lambda: heartbeats("Engine", 5.0), disposed=216)

    beats = nexts(messages)
    assert [t for t, _ in beats] == [205, 210, 215]
    assert all(isinstance(beat, Heartbeat) for _, beat in beats)
    assert [beat.count for _, beat in beats] == [1, 2, 3]
    assert [beat.ts_event for _, beat in beats] == [t * 1_000_000_000 for t in (205, 210, 215)]
    assert {beat.topic for _, beat in beats} == {"system.engine"}
    assert {beat.component for _, beat in beats} == {"Engine"}
    assert len({beat.event_id for _, beat in beats}) == 3


def test_timestamps_follow_a_historical_clock() -> None:
    origin = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    scheduler = HistoricalScheduler(initial_clock=origin)
    seen: list[Heartbeat] = []
    heartbeats("feed", timedelta(milliseconds=250), scheduler=scheduler).subscribe(seen.append)

    scheduler.advance_by(timedelta(seconds=1))

    origin_ns = int(origin.timestamp()) * 1_000_000_000
    assert [b.ts_event - origin_ns for b in seen] == [250_000_000 * k for k in (1, 2, 3, 4)]
    assert [b.ts_init for b in seen] == [b.ts_event for b in seen]


def test_with_an_engine_clock_ts_event_is_its_time_and_ts_init_the_schedulers() -> None:
    scheduler = TestScheduler()
    data_time = ManualClock(946_684_800 * NS_PER_S)  # a replay's clock, in 2000
    data_time.advance_to(946_771_200 * NS_PER_S)

    beats = nexts(run(scheduler, lambda: heartbeats("runner", 5.0, clock=data_time), disposed=211))

    assert [beat.ts_event for _, beat in beats] == [946_771_200 * NS_PER_S] * 2
    assert [beat.ts_init for _, beat in beats] == [t * NS_PER_S for t in (205, 210)]


def test_generic_heartbeat_uses_make_beat_and_counts_per_subscription() -> None:
    scheduler = TestScheduler()
    source = heartbeat(1.0, lambda count, ts_ns: (count, ts_ns), scheduler=scheduler)
    first: list[tuple[int, int]] = []
    second: list[tuple[int, int]] = []

    source.subscribe(first.append)
    scheduler.advance_to(2.5)
    source.subscribe(second.append)
    scheduler.advance_to(4.0)

    assert first == [(1, 1_000_000_000), (2, 2_000_000_000), (3, 3_000_000_000), (4, 4_000_000_000)]
    assert second == [(1, 3_500_000_000)]


def test_failing_make_beat_goes_to_on_error_and_stops() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("cannot build beat")

    def make(count: int, ts_ns: int) -> int:
        if count == 3:
            raise boom
        return count

    messages = run(scheduler, lambda: heartbeat(2.0, make))

    assert values(messages) == [1, 2]
    assert error_of(messages) == (206, boom)


def test_beats_keep_a_staleness_watch_fresh() -> None:
    with marbles_testing(timespan=1.0) as (start, _cold, _hot, _exp):
        results = start(lambda: heartbeats("engine", 3.0).pipe(staleness(4.0)))

    # Beats every 3 s keep a 4 s watch fresh: one FRESH at the first beat, never STALE.
    assert [(m.time, m.value.value.stale) for m in results] == [(203, False)]


def test_invalid_arguments_are_refused_when_built() -> None:
    with pytest.raises(EventError, match="component"):
        heartbeats("bad.name!", 1.0)
    with pytest.raises(ConfigError, match="interval"):
        heartbeats("engine", 0)
    with pytest.raises(ConfigError, match="interval"):
        heartbeat(-1.0, lambda count, ts: count)
