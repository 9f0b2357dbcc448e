"""Market fold: last price, quote sides and timestamps from ticks and bars."""

from __future__ import annotations

from state.fold import apply, replay
from state.model import initial_state
from streams.events import TickReceived
from tests.factories import bar, quote, tick


def test_trade_tick_sets_last_and_ts() -> None:
    state = apply(initial_state(), tick("AAPL", 101.5, ts_event=7))

    assert state["prices"]["AAPL"] == {"last": 101.5, "bid": None, "ask": None, "ts": 7}


def test_quote_tick_marks_at_mid() -> None:
    state = apply(initial_state(), quote("AAPL", bid=99.0, ask=101.0, ts_event=3))

    assert state["prices"]["AAPL"] == {"last": 100.0, "bid": 99.0, "ask": 101.0, "ts": 3}


def test_trade_tick_keeps_previous_quote_sides() -> None:
    state = replay([quote("AAPL", bid=99.0, ask=101.0), tick("AAPL", 100.5)])

    assert state["prices"]["AAPL"]["bid"] == 99.0
    assert state["prices"]["AAPL"]["ask"] == 101.0
    assert state["prices"]["AAPL"]["last"] == 100.5


def test_one_sided_quote_marks_at_that_side() -> None:
    state = apply(initial_state(), TickReceived(symbol="AAPL", bid=98.0))

    assert state["prices"]["AAPL"]["last"] == 98.0


def test_tick_without_price_changes_only_meta() -> None:
    start = initial_state()

    state = apply(start, TickReceived(symbol="AAPL", seq=1))

    assert state["prices"] is start["prices"]
    assert state["meta"]["seq"] == 1


def test_bar_marks_at_close() -> None:
    state = replay([quote("MSFT", bid=1.0, ask=2.0), bar("MSFT", close=250.0, ts_event=9)])

    assert state["prices"]["MSFT"] == {"last": 250.0, "bid": 1.0, "ask": 2.0, "ts": 9}


def test_tick_copies_only_the_changed_path() -> None:
    start = replay([tick("AAPL", 1.0), tick("MSFT", 2.0)])

    state = apply(start, tick("AAPL", 3.0))

    assert state["prices"]["MSFT"] is start["prices"]["MSFT"]
    assert state["positions"] is start["positions"]
    assert state["account"] is start["account"]
    assert start["prices"]["AAPL"]["last"] == 1.0
