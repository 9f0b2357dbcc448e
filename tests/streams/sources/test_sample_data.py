"""Sample data: real daily bars from the installed bokeh-sampledata, without any download."""

from __future__ import annotations

import pandas as pd
import pytest

from streams.errors import ConfigError
from streams.events import BarReceived
from streams.sources import (
    SAMPLE_SYMBOLS,
    iter_bars,
    load_sample_bars,
    load_sample_universe,
    sample_data_path,
)


def test_the_data_ships_with_the_package() -> None:
    path = sample_data_path()
    assert path.is_file()
    assert path.stat().st_size > 100_000


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_sample_bars_are_sane_and_sorted(symbol: str) -> None:
    frame = load_sample_bars(symbol)

    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert len(frame) > 2000
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["timestamp"].is_unique
    assert frame["timestamp"].iloc[-1] == pd.Timestamp("2013-03-01", tz="UTC")
    assert (frame[["open", "high", "low", "close"]] > 0).all().all()
    assert (frame["high"] >= frame[["open", "close", "low"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["volume"] >= 0).all()
    assert 1.0 < frame["close"].median() < 2000.0
    assert frame.attrs["rejected"] == 0


def test_known_values_of_the_real_series() -> None:
    aapl = load_sample_bars("aapl")
    first = aapl.iloc[0]
    assert first["timestamp"] == pd.Timestamp("2000-03-01", tz="UTC")
    assert (first["open"], first["close"]) == (118.56, 130.31)
    assert SAMPLE_SYMBOLS == ("AAPL", "GOOG", "IBM", "MSFT")


def test_sample_bars_replay_without_rejections() -> None:
    events = list(iter_bars(load_sample_bars("MSFT"), "MSFT"))
    assert all(isinstance(e, BarReceived) for e in events)
    assert {e.interval_s for e in events if isinstance(e, BarReceived)} == {86_400}


def test_universe_is_in_time_order_across_symbols() -> None:
    frame = load_sample_universe(["IBM", "GOOG"])
    assert set(frame["symbol"]) == {"IBM", "GOOG"}
    assert frame["timestamp"].is_monotonic_increasing
    assert len(frame) == len(load_sample_bars("IBM")) + len(load_sample_bars("GOOG"))


def test_unknown_symbol_is_refused() -> None:
    with pytest.raises(ConfigError, match="TSLA"):
        load_sample_bars("TSLA")
