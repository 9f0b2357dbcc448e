"""MarketDataValidator: each rejection names the field, the value and the reason, and is counted."""

from __future__ import annotations

import math
from typing import Any

import pytest

from streams.events import BarReceived, DataRejected, TickReceived
from streams.sources.validation import (
    CROSSED,
    DUPLICATE,
    HIGH_BELOW_LOW,
    NEGATIVE_SIZE,
    NO_PRICE,
    NON_POSITIVE,
    NOT_FINITE,
    OUT_OF_ORDER,
    OUTSIDE_RANGE,
    UNKNOWN_SYMBOL,
    MarketDataValidator,
    reason_code,
)


def tick(**kw: Any) -> TickReceived:
    fields: dict[str, Any] = {"symbol": "AAPL", "bid": 100.0, "ask": 100.1, "last": 100.05}
    fields |= {"size": 10.0, "ts_event": 1_000}
    fields.update(kw)
    return TickReceived(**fields)


def bar(**kw: Any) -> BarReceived:
    fields: dict[str, Any] = {"symbol": "AAPL", "open": 10.0, "high": 12.0, "low": 9.0}
    fields |= {"close": 11.0, "volume": 500.0, "ts_event": 1_000}
    fields.update(kw)
    return BarReceived(**fields)


def test_valid_tick_and_bar_pass_unchanged() -> None:
    v = MarketDataValidator({"AAPL"}, "test")
    t, b = tick(), bar()
    assert v.check_tick(t) is t
    assert v.check_bar(b) is b
    assert v.accepted == 2
    assert v.rejected_total == 0


@pytest.mark.parametrize(
    ("kw", "field", "value", "code"),
    [
        ({"bid": math.nan}, "bid", "nan", NOT_FINITE),
        ({"ask": math.inf}, "ask", "inf", NOT_FINITE),
        ({"last": 0.0}, "last", "0.0", NON_POSITIVE),
        ({"bid": -1.0}, "bid", "-1.0", NON_POSITIVE),
        ({"bid": 101.0, "ask": 100.0}, "bid", "101.0", CROSSED),
        ({"size": -5.0}, "size", "-5.0", NEGATIVE_SIZE),
        ({"size": math.nan}, "size", "nan", NOT_FINITE),
        ({"bid": None, "ask": None, "last": None}, "price", "None", NO_PRICE),
        ({"symbol": "TSLA"}, "symbol", "TSLA", UNKNOWN_SYMBOL),
    ],
)
def test_bad_tick_is_rejected_naming_field_value_and_reason(
    kw: dict[str, Any], field: str, value: str, code: str
) -> None:
    v = MarketDataValidator({"AAPL"}, "test")
    out = v.check_tick(tick(**kw))
    assert isinstance(out, DataRejected)
    assert (out.field, out.value, reason_code(out.reason)) == (field, value, code)
    assert out.source == "test"
    assert out.topic == "data.rejected.test"
    assert len(out.reason) > len(code) + 2  # a human explanation follows the code
    assert v.rejected == {code: 1}


@pytest.mark.parametrize(
    ("kw", "field", "value", "code"),
    [
        ({"close": math.nan}, "close", "nan", NOT_FINITE),
        ({"open": 0.0}, "open", "0.0", NON_POSITIVE),
        ({"low": -2.0}, "low", "-2.0", NON_POSITIVE),
        ({"high": 8.0, "low": 9.0, "open": 8.5, "close": 8.5}, "high", "8.0", HIGH_BELOW_LOW),
        ({"open": 13.0}, "open", "13.0", OUTSIDE_RANGE),
        ({"close": 8.0}, "close", "8.0", OUTSIDE_RANGE),
        ({"volume": -1.0}, "volume", "-1.0", NEGATIVE_SIZE),
        ({"volume": math.inf}, "volume", "inf", NOT_FINITE),
    ],
)
def test_bad_bar_is_rejected_naming_field_value_and_reason(
    kw: dict[str, Any], field: str, value: str, code: str
) -> None:
    v = MarketDataValidator(None, "test")
    out = v.check_bar(bar(**kw))
    assert isinstance(out, DataRejected)
    assert (out.field, out.value, reason_code(out.reason)) == (field, value, code)
    assert v.rejected[code] == 1


def test_out_of_order_and_duplicate_timestamps_per_symbol() -> None:
    v = MarketDataValidator(None, "test")
    assert isinstance(v.check_tick(tick(ts_event=10)), TickReceived)
    assert isinstance(v.check_tick(tick(symbol="MSFT", ts_event=5)), TickReceived)  # own clock

    dup = v.check_tick(tick(ts_event=10))
    older = v.check_tick(tick(ts_event=9))

    assert isinstance(dup, DataRejected) and isinstance(older, DataRejected)
    assert (dup.field, dup.value, reason_code(dup.reason)) == ("ts_event", "10", DUPLICATE)
    assert (older.field, older.value, reason_code(older.reason)) == ("ts_event", "9", OUT_OF_ORDER)
    assert isinstance(v.check_tick(tick(ts_event=11)), TickReceived)
    assert v.rejected == {DUPLICATE: 1, OUT_OF_ORDER: 1}


def test_a_rejected_event_does_not_advance_the_symbol_clock() -> None:
    v = MarketDataValidator(None, "test")
    assert isinstance(v.check_bar(bar(ts_event=1)), BarReceived)
    assert isinstance(v.check_bar(bar(ts_event=5, close=math.nan)), DataRejected)
    assert isinstance(v.check_bar(bar(ts_event=3)), BarReceived)


def test_ticks_and_bars_keep_separate_order() -> None:
    v = MarketDataValidator(None, "test")
    assert isinstance(v.check_bar(bar(ts_event=100)), BarReceived)
    assert isinstance(v.check_tick(tick(ts_event=50)), TickReceived)


def test_counts_accumulate_per_reason_and_check_dispatches() -> None:
    v = MarketDataValidator({"AAPL"}, "test")
    events = [
        tick(symbol="X", ts_event=1),
        tick(symbol="Y", ts_event=2),
        tick(bid=2.0, ask=1.0, ts_event=3),
        bar(ts_event=4),
    ]
    out = [v.check(e) for e in events]
    assert [type(e).__name__ for e in out] == [
        "DataRejected",
        "DataRejected",
        "DataRejected",
        "BarReceived",
    ]
    assert v.rejected == {UNKNOWN_SYMBOL: 2, CROSSED: 1}
    assert v.rejected_total == 3
    # A rejection made elsewhere (a bad file row) is counted when it passes through check().
    assert v.check(out[2]) is out[2]
    assert v.rejected[CROSSED] == 2
