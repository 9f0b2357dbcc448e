"""Fill rules as pure functions: validation, bar and quote prices, slippage, commission."""

from __future__ import annotations

import math

import pytest

from engine.fill_rules import (
    bar_fill_price,
    commission,
    quote_price,
    tick_fill_price,
    validate_order,
    with_slippage,
)
from streams.events import BUY, SELL
from tests.factories import bar, order_submitted


def limit(side: str, price: float | None, **kw: object) -> object:
    return order_submitted(side=side, order_type="limit", limit_price=price, **kw)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"qty": 0.0}, "qty 0.0 must be greater than 0"),
        ({"qty": -5.0}, "qty -5.0 must be greater than 0"),
        ({"qty": math.nan}, "qty nan is not a finite number"),
        ({"qty": math.inf}, "qty inf is not a finite number"),
        ({"side": "hold"}, "side 'hold' is not one of buy, sell"),
        (
            {"order_type": "trailing"},
            "order_type 'trailing' is not one of market, limit, stop, stop_limit",
        ),
        ({"order_type": "stop"}, "stop order needs a stop_price, got None"),
        ({"order_type": "stop_limit", "stop_price": 5.0}, "stop_limit order needs a limit_price"),
        ({"order_type": "stop", "stop_price": -1.0}, "stop_price -1.0 must be a positive number"),
        ({"order_type": "limit"}, "limit order needs a limit_price, got None"),
        ({"order_type": "limit", "limit_price": 0.0}, "limit_price 0.0 must be a positive number"),
        ({"order_type": "limit", "limit_price": -1.0}, "limit_price -1.0 must be a positive"),
        ({"symbol": ""}, "symbol must not be empty"),
    ],
)
def test_invalid_orders_are_named_by_field_and_value(fields: dict, expected: str) -> None:
    reason = validate_order(order_submitted(**fields))

    assert reason is not None
    assert reason.startswith(expected)


def test_valid_market_and_limit_orders_pass() -> None:
    assert validate_order(order_submitted(side=SELL, qty=0.5)) is None
    assert validate_order(limit(BUY, 99.5)) is None


def test_market_order_fills_at_the_bar_open() -> None:
    wide = bar(open=101.0, close=104.0, high=105.0, low=99.0)

    assert bar_fill_price(order_submitted(), wide)[0] == 101.0


@pytest.mark.parametrize(
    ("side", "limit_price", "ohlc", "expected"),
    [
        (BUY, 99.0, (100.0, 101.0, 99.5, 100.5), None),  # low stays above the limit
        (BUY, 99.0, (100.0, 101.0, 98.5, 99.5), 99.0),  # crossed intrabar: at the limit
        (BUY, 99.0, (97.0, 98.0, 96.0, 97.5), 97.0),  # gapped below: at the better open
        (BUY, 99.0, (100.0, 100.0, 99.0, 99.0), 99.0),  # touching the limit fills
        (SELL, 101.0, (100.0, 100.5, 99.0, 100.0), None),  # high stays below the limit
        (SELL, 101.0, (100.0, 102.0, 99.0, 101.5), 101.0),
        (SELL, 101.0, (103.0, 104.0, 102.0, 103.5), 103.0),  # gapped above: at the open
    ],
)
def test_limit_orders_fill_on_bars_when_price_crosses(
    side: str, limit_price: float, ohlc: tuple[float, ...], expected: float | None
) -> None:
    o, h, low, c = ohlc
    price = bar_fill_price(limit(side, limit_price), bar(open=o, high=h, low=low, close=c))[0]

    assert price == expected


def test_quotes_fill_buys_at_the_ask_and_sells_at_the_bid() -> None:
    assert tick_fill_price(order_submitted(side=BUY), 99.9, 100.1, 100.0)[0] == 100.1
    assert tick_fill_price(order_submitted(side=SELL), 99.9, 100.1, 100.0)[0] == 99.9


def test_last_trade_stands_in_for_a_missing_quote_side() -> None:
    assert quote_price(BUY, 99.9, None, 100.0) == 100.0
    assert quote_price(SELL, None, 100.1, 100.0) == 100.0
    assert quote_price(SELL, None, None, None) is None
    assert tick_fill_price(order_submitted(), None, None, None)[0] is None


@pytest.mark.parametrize(
    ("side", "limit_price", "bid", "ask", "expected"),
    [
        (BUY, 100.0, 99.8, 100.2, None),
        (BUY, 100.0, 99.7, 99.9, 99.9),  # fills at the (better) ask
        (BUY, 100.0, 99.8, 100.0, 100.0),
        (SELL, 100.0, 99.8, 100.2, None),
        (SELL, 100.0, 100.3, 100.5, 100.3),
    ],
)
def test_limit_orders_fill_on_quotes_when_price_crosses(
    side: str, limit_price: float, bid: float, ask: float, expected: float | None
) -> None:
    assert tick_fill_price(limit(side, limit_price), bid, ask, None)[0] == expected


def test_slippage_moves_the_price_against_the_trader() -> None:
    assert with_slippage(BUY, 100.0, 10.0) == pytest.approx(100.1)
    assert with_slippage(SELL, 100.0, 10.0) == pytest.approx(99.9)
    assert with_slippage(BUY, 100.0, 0.0) == 100.0


def test_slippage_never_takes_a_limit_order_beyond_its_limit() -> None:
    assert with_slippage(BUY, 99.95, 10.0, limit=100.0) == 100.0
    assert with_slippage(SELL, 100.05, 10.0, limit=100.0) == 100.0
    assert with_slippage(BUY, 90.0, 10.0, limit=100.0) == pytest.approx(90.09)


def test_slippage_refuses_an_unknown_side() -> None:
    with pytest.raises(ValueError, match="side 'hold'"):
        with_slippage("hold", 100.0, 1.0)


def test_commission_is_per_unit_plus_bps_of_notional_with_a_minimum() -> None:
    # 200 units at 50: 200 * 0.005 + 10_000 * 2bp = 1.0 + 2.0
    assert commission(200, 50.0, per_unit=0.005, bps=2.0, minimum=1.0) == pytest.approx(3.0)
    assert commission(10, 50.0, per_unit=0.005, bps=2.0, minimum=1.0) == 1.0  # minimum wins
    assert commission(10, 50.0, per_unit=0.0, bps=0.0, minimum=0.0) == 0.0
