"""Replay: pure generators over DataFrame/CSV/Parquet, and the paced, threaded ReplayFeed."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import pandas as pd
import pytest

from streams.clock import ManualClock
from streams.errors import ConfigError, InvalidTransition
from streams.events import BarReceived, DataRejected, ErrorRaised, Event, TickReceived
from streams.sources import FINISHED, PAUSED, STOPPED, ReplayFeed, iter_bars, iter_ticks
from streams.sources.validation import reason_code
from tests.streams.sources.helpers import FakeSleep, Recorder, wait_until

T0 = pd.Timestamp("2024-01-02 14:30", tz="UTC")
NS = 1_000_000_000


def bars_frame(n: int = 4, step_s: int = 10) -> pd.DataFrame:
    closes = [100.0 + i for i in range(n)]
    return pd.DataFrame(
        {
            "timestamp": [T0 + pd.Timedelta(seconds=step_s * i) for i in range(n)],
            "open": [c - 0.5 for c in closes],
            "high": [c + 1.0 for c in closes],
            "low": [c - 1.0 for c in closes],
            "close": closes,
            "volume": [1000.0 * (i + 1) for i in range(n)],
        }
    )


# -- generators ----------------------------------------------------------------------------
def test_iter_bars_from_dataframe() -> None:
    events = list(iter_bars(bars_frame(), "AAPL", source="hist"))

    assert all(isinstance(e, BarReceived) for e in events)
    bars = [e for e in events if isinstance(e, BarReceived)]
    assert [b.close for b in bars] == [100.0, 101.0, 102.0, 103.0]
    assert [b.ts_event for b in bars] == [T0.value + 10 * NS * i for i in range(4)]
    assert {b.interval_s for b in bars} == {10}
    assert {b.topic for b in bars} == {"data.bars.aapl"}
    assert {b.source for b in bars} == {"hist"}
    assert bars[3].volume == 4000.0


def test_iter_bars_from_csv_turns_bad_rows_into_rejections(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02 00:00:00,10,12,9,11,100\n"
        "2024-01-03 00:00:00,10,12,9,,100\n"  # NaN close
        "2024-01-04 00:00:00,10,abc,9,11,100\n"  # non-numeric high
        "not-a-date,10,12,9,11,100\n"
        "2024-01-05 00:00:00,10,8,9,9,100\n"  # high < low
        "2024-01-06 00:00:00,10,12,9,11,-5\n"  # negative volume
        "2024-01-07 00:00:00,10,12,9,11.5,100\n"
    )

    events = list(iter_bars(path, "IBM"))

    assert len(events) == 7
    good = [e for e in events if isinstance(e, BarReceived)]
    assert [pd.Timestamp(b.ts_event, tz="UTC").day for b in good] == [2, 7]
    assert good[0].ts_event == pd.Timestamp("2024-01-02", tz="UTC").value  # naive -> UTC
    rejected = [
        (e.field, e.value, reason_code(e.reason)) for e in events if isinstance(e, DataRejected)
    ]
    assert rejected == [
        ("close", "nan", "not_finite"),
        ("high", "abc", "not_a_number"),
        ("timestamp", "not-a-date", "bad_timestamp"),
        ("high", "8.0", "high_below_low"),
        ("volume", "-5.0", "negative_size"),
    ]
    assert all(e.symbol == "IBM" for e in events)


def test_iter_bars_unsorted_rows_are_rejected_not_reordered() -> None:
    frame = bars_frame(3).iloc[[0, 2, 1]]
    events = list(iter_bars(frame, "AAPL"))
    assert [type(e).__name__ for e in events] == ["BarReceived", "BarReceived", "DataRejected"]
    assert isinstance(events[2], DataRejected)
    assert reason_code(events[2].reason) == "out_of_order"


def test_iter_ticks_from_parquet_with_symbol_column(tmp_path: Path) -> None:
    path = tmp_path / "ticks.parquet"
    pd.DataFrame(
        {
            "timestamp": [T0, T0, T0 + pd.Timedelta(milliseconds=5)],
            "symbol": ["AAPL", "MSFT", "AAPL"],
            "bid": [100.0, 300.0, 100.1],
            "ask": [100.2, 300.5, 100.3],
            "last": [100.1, math.nan, 100.2],
            "size": [5.0, 0.0, 7.0],
        }
    ).to_parquet(path)

    events = list(iter_ticks(path))

    assert all(isinstance(e, TickReceived) for e in events)
    ticks = [e for e in events if isinstance(e, TickReceived)]
    assert [(t.symbol, t.bid, t.ask, t.last, t.size) for t in ticks] == [
        ("AAPL", 100.0, 100.2, 100.1, 5.0),
        ("MSFT", 300.0, 300.5, None, 0.0),  # quote without a trade
        ("AAPL", 100.1, 100.3, 100.2, 7.0),
    ]
    assert ticks[2].ts_event - ticks[0].ts_event == 5_000_000


def test_iter_ticks_from_csv_rejects_garbage_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text(
        "timestamp,symbol,bid,ask,last,size\n"
        "2024-01-02T14:30:00Z,AAPL,100,100.2,100.1,5\n"
        "2024-01-02T14:30:01Z,AAPL,xyz,100.2,100.1,5\n"
        "2024-01-02T14:30:02Z,AAPL,,,,5\n"
        "2024-01-02T14:30:03Z,AAPL,101,100.5,100.7,5\n"
        "2024-01-02T15:30:04+01:00,AAPL,100.3,100.4,100.35,5\n"
    )

    events = list(iter_ticks(path))

    summary = [
        (e.field, reason_code(e.reason)) if isinstance(e, DataRejected) else "tick" for e in events
    ]
    assert summary == [
        "tick",
        ("bid", "not_a_number"),
        ("price", "no_price"),
        ("bid", "crossed"),
        "tick",
    ]
    assert events[4].ts_event == pd.Timestamp("2024-01-02 14:30:04", tz="UTC").value


def test_integer_timestamps_are_nanoseconds() -> None:
    frame = bars_frame(2)
    frame["timestamp"] = [T0.value, T0.value + 60 * NS]
    events = list(iter_bars(frame, "AAPL"))
    assert [e.ts_event for e in events] == [T0.value, T0.value + 60 * NS]
    assert isinstance(events[0], BarReceived) and events[0].interval_s == 60


def test_missing_columns_or_file_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="close"):
        iter_bars(bars_frame().drop(columns=["close"]), "AAPL")
    with pytest.raises(ConfigError, match="does not exist"):
        iter_bars(tmp_path / "nope.csv", "AAPL")
    with pytest.raises(ConfigError, match="symbol"):
        iter_ticks(pd.DataFrame({"timestamp": [T0], "bid": [1.0]}))


# -- the threaded feed ---------------------------------------------------------------------
def test_feed_paces_accelerated_replay_with_injected_sleep() -> None:
    sleep = FakeSleep()
    rec = Recorder()
    feed = ReplayFeed(
        rec, ManualClock(5), bars_frame(4, step_s=10), symbol="AAPL", speed=100, sleep=sleep
    )
    feed.max_sleep_s = 60.0

    feed.start()
    assert feed.join(5)

    assert sleep.calls == pytest.approx([0.1, 0.1, 0.1])  # 10 s of data at x100
    assert len(rec.bars) == 4
    assert feed.status == FINISHED
    assert (feed.position, feed.total, feed.passes) == (4, 4, 1)
    assert feed.progress == 1.0
    assert feed.last_event_ns == 5
    assert {b.ts_init for b in rec.bars} == {5}


def test_feed_long_waits_are_sliced_so_controls_stay_responsive() -> None:
    sleep = FakeSleep()
    feed = ReplayFeed(
        Recorder(), None, bars_frame(3, step_s=60), symbol="A", speed=1.0, sleep=sleep
    )
    feed.start()
    assert feed.join(5)
    assert max(sleep.calls) <= feed.max_sleep_s
    assert sleep.total == pytest.approx(120.0)


def test_feed_at_max_speed_never_sleeps() -> None:
    sleep = FakeSleep()
    rec = Recorder()
    feed = ReplayFeed(rec, None, bars_frame(50), symbol="AAPL", speed="max", sleep=sleep)
    feed.start()
    assert feed.join(5)
    assert sleep.calls == []
    assert len(rec.bars) == 50


def test_set_speed_while_running_applies_to_later_events() -> None:
    sleep = FakeSleep()
    feed: ReplayFeed

    def on_event(event: Event) -> None:
        if isinstance(event, BarReceived) and event.close == 101.0:
            feed.set_speed(1000)

    rec = Recorder(on_event)
    feed = ReplayFeed(rec, None, bars_frame(4, step_s=10), symbol="A", speed=10, sleep=sleep)
    feed.max_sleep_s = 60.0
    feed.start()
    assert feed.join(5)
    assert sleep.calls == pytest.approx([1.0, 0.01, 0.01])


def test_pause_holds_the_feed_and_resume_continues() -> None:
    feed: ReplayFeed

    def on_event(event: Event) -> None:
        if isinstance(event, BarReceived) and event.close == 102.0:
            feed.pause()

    rec = Recorder(on_event)
    feed = ReplayFeed(rec, None, bars_frame(10), symbol="AAPL")
    feed.start()

    assert wait_until(lambda: feed.status == PAUSED)
    time.sleep(0.05)
    assert feed.position == 3
    assert len(rec.bars) == 3

    feed.resume()
    assert feed.join(5)
    assert [b.close for b in rec.bars] == [100.0 + i for i in range(10)]
    assert feed.status == FINISHED


def test_stop_interrupts_a_long_real_wait() -> None:
    rec = Recorder()
    feed = ReplayFeed(rec, None, bars_frame(3, step_s=3600), symbol="AAPL", speed=1.0)
    feed.start()
    assert wait_until(lambda: len(rec.bars) == 1)

    started = time.monotonic()
    assert feed.stop(timeout=2.0)

    assert time.monotonic() - started < 1.0
    assert feed.status == STOPPED
    assert not feed.alive
    assert len(rec.bars) == 1


def test_loop_restarts_with_increasing_timestamps() -> None:
    feed: ReplayFeed

    def on_event(event: Event) -> None:
        if len(rec.events) >= 10:
            feed.stop()  # from the feed thread: asks, does not join

    rec = Recorder(on_event)
    feed = ReplayFeed(rec, None, bars_frame(3, step_s=60), symbol="AAPL", loop=True)
    feed.start()
    assert feed.join(5)

    bars = rec.bars
    assert len(bars) == 10
    stamps = [b.ts_event for b in bars]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert stamps[3] - stamps[2] == 60 * NS  # the next pass follows on at the data's step
    assert [b.close for b in bars[:6]] == [100.0, 101.0, 102.0] * 2
    assert rec.rejected == []
    assert feed.passes == 3
    assert feed.status == STOPPED


def test_feed_publishes_rejections_and_finishes(tmp_path: Path) -> None:
    frame = bars_frame(4)
    frame["close"] = frame["close"].astype(object)
    frame.loc[1, "close"] = "oops"
    frame.loc[2, "close"] = math.nan
    rec = Recorder()
    feed = ReplayFeed(rec, None, frame, symbol="AAPL", source="hist")

    feed.start()
    assert feed.join(5)

    assert [b.close for b in rec.bars] == [100.0, 103.0]
    assert [(r.field, r.value) for r in rec.rejected] == [("close", "oops"), ("close", "nan")]
    assert feed.validator.rejected == {"not_a_number": 1, "not_finite": 1}
    assert feed.published == 2
    assert feed.status == FINISHED


def test_an_exception_in_the_feed_thread_is_reported_and_the_feed_stops() -> None:
    seen: list[Event] = []

    def publish(event: Event) -> None:
        seen.append(event)
        if isinstance(event, BarReceived):
            raise RuntimeError("downstream broke")

    feed = ReplayFeed(publish, None, bars_frame(3), symbol="AAPL", name="replay_x")
    feed.start()
    assert feed.join(5)

    errors = [e for e in seen if isinstance(e, ErrorRaised)]
    assert len(errors) == 1
    assert errors[0].component == "replay_x"
    assert errors[0].error_type == "RuntimeError"
    assert "downstream broke" in errors[0].message
    assert feed.status == "failed"
    assert isinstance(feed.last_error, RuntimeError)


def test_lifecycle_rules() -> None:
    feed = ReplayFeed(Recorder(), None, bars_frame(2), symbol="AAPL")
    assert feed.status == STOPPED
    with pytest.raises(InvalidTransition):
        feed.pause()
    feed.start()
    assert feed.join(5)
    with pytest.raises(InvalidTransition):
        feed.start()
    with pytest.raises(InvalidTransition):
        feed.resume()
    assert feed.stop()
    assert feed.status == FINISHED


def test_invalid_options_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match="speed"):
        ReplayFeed(Recorder(), None, bars_frame(), symbol="A", speed=0)
    with pytest.raises(ConfigError, match="speed"):
        ReplayFeed(Recorder(), None, bars_frame(), symbol="A", speed="fast")
    with pytest.raises(ConfigError, match="kind"):
        ReplayFeed(Recorder(), None, bars_frame(), symbol="A", kind="quotes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="source"):
        ReplayFeed(Recorder(), None, bars_frame(), symbol="A", source="my feed!")
