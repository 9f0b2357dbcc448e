"""Synthetic ticks: deterministic per seed, many symbols, sane quotes, and a paced feed."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from streams.clock import ManualClock
from streams.errors import ConfigError
from streams.events import TickReceived
from streams.sources import FINISHED, MarketDataValidator, SyntheticFeed, synthetic_ticks
from tests.streams.sources.helpers import FakeSleep, Recorder, wait_until

START = 1_700_000_000_000_000_000


def content(ticks: list[TickReceived]) -> list[tuple[object, ...]]:
    """Everything but the random event id."""
    return [dataclasses.astuple(dataclasses.replace(t, event_id="")) for t in ticks]


def test_same_seed_same_ticks_other_seed_other_ticks() -> None:
    a = list(synthetic_ticks(["AAPL", "MSFT"], 7, START, 1_000, count=200))
    b = list(synthetic_ticks(["AAPL", "MSFT"], 7, START, 1_000, count=200))
    c = list(synthetic_ticks(["AAPL", "MSFT"], 8, START, 1_000, count=200))

    assert content(a) == content(b)
    assert [t.last for t in a] != [t.last for t in c]


def test_many_symbols_take_turns_with_increasing_time() -> None:
    symbols = [f"S{i}" for i in range(5)]
    ticks = list(synthetic_ticks(symbols, 1, START, 2_000, count=50))

    assert [t.symbol for t in ticks[:10]] == symbols * 2
    assert [t.ts_event for t in ticks] == [START + 2_000 * i for i in range(50)]
    validator = MarketDataValidator(symbols, "synthetic")
    assert all(validator.check_tick(t) is t for t in ticks)


def test_quotes_are_valid_and_prices_walk() -> None:
    ticks = list(
        synthetic_ticks(["X"], 3, START, count=2_000, start_prices={"X": 50.0}, volatility=0.002)
    )
    for t in ticks:
        assert t.bid is not None and t.ask is not None
        assert 0 < t.bid < t.ask
        assert t.last in (t.bid, t.ask)
        assert t.size > 0 and t.size % 100 == 0
        assert t.bid == round(t.bid, 2)
    lasts = [t.last for t in ticks if t.last is not None]
    assert len(set(lasts)) > 100  # it moves
    assert 25.0 < lasts[-1] < 100.0  # ... but as a sane random walk from 50
    log_returns = [math.log(b / a) for a, b in itertools.pairwise(lasts)]
    assert max(abs(r) for r in log_returns) < 0.02


def test_endless_by_default() -> None:
    ticks = synthetic_ticks(["A"], 0, START)
    assert len(list(itertools.islice(ticks, 5_000))) == 5_000


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError):
        next(synthetic_ticks([], 0, START))
    with pytest.raises(ConfigError):
        next(synthetic_ticks(["A", "A"], 0, START))
    with pytest.raises(ConfigError):
        next(synthetic_ticks(["A"], 0, START, start_prices=-1.0))
    with pytest.raises(ConfigError):
        SyntheticFeed(Recorder(), None, ["A"], rate=-1)


def test_feed_emits_the_seeded_sequence_paced_by_rate() -> None:
    sleep = FakeSleep()
    rec = Recorder()
    feed = SyntheticFeed(
        rec,
        ManualClock(42),
        ["AAPL", "MSFT"],
        seed=5,
        rate=100,
        count=20,
        start_ns=START,
        sleep=sleep,
    )

    feed.start()
    assert feed.join(5)

    expected = list(synthetic_ticks(["AAPL", "MSFT"], 5, START, 10_000_000, count=20))
    assert [(t.symbol, t.last, t.ts_event) for t in rec.ticks] == [
        (t.symbol, t.last, t.ts_event) for t in expected
    ]
    assert sleep.total == pytest.approx(19 * 0.01)
    assert feed.rate == pytest.approx(100)
    assert (feed.position, feed.total, feed.status) == (20, 20, FINISHED)
    assert feed.last_event_ns == 42


def test_feed_at_rate_zero_runs_flat_out_and_stops_cleanly() -> None:
    rec = Recorder()
    feed = SyntheticFeed(rec, None, ["A", "B", "C"], seed=1, rate=0)
    feed.start()
    assert wait_until(lambda: feed.position >= 1_000)
    feed.pause()
    assert wait_until(lambda: feed.status == "paused")
    feed.resume()
    assert feed.stop(2.0)
    assert feed.status == "stopped"
    assert len(rec.ticks) == feed.position
    assert rec.rejected == []
