"""The paper broker's fill rules as pure functions: when an order fills, at what price, for what.

Bars (``ts_event`` is the bar's close): an order accepted at clock time ``t`` fills on the
first bar of its symbol with ``ts_event > t``, never on the bar the strategy was looking at nor
on another symbol's bar of the same time (no look-ahead). A market order fills at that bar's
open. A buy limit fills if ``bar.low <= limit``, at ``min(bar.open, limit)`` (a
gap down through the limit fills at the better open); a sell limit fills if
``bar.high >= limit``, at ``max(bar.open, limit)``.

Quotes: a buy fills at the ask and a sell at the bid; when a side is unknown the last trade
price stands in. A buy limit fills if that price is ``<= limit``, a sell limit if ``>= limit``,
at that price (which is never worse than the limit).

Slippage moves the price against the trader by ``bps`` basis points; for a limit order it is
capped at the limit, so a limit order never fills worse than its limit. Commission is
``qty * per_unit + notional * bps / 10_000``, at least ``minimum``.
"""

from __future__ import annotations

import math

from streams.events import BUY, SELL, SIDES, BarReceived, OrderSubmitted

MARKET = "market"
LIMIT = "limit"
ORDER_TYPES = (MARKET, LIMIT)

BPS = 10_000.0


def validate_order(order: OrderSubmitted) -> str | None:
    """Why ``order`` cannot be accepted (naming the field and value), or None if it can."""
    if not order.symbol:
        return "symbol must not be empty"
    if order.side not in SIDES:
        return f"side {order.side!r} is not one of {', '.join(SIDES)}"
    qty = order.qty
    if isinstance(qty, bool) or not isinstance(qty, int | float) or not math.isfinite(qty):
        return f"qty {qty!r} is not a finite number"
    if qty <= 0:
        return f"qty {qty!r} must be greater than 0"
    if order.order_type not in ORDER_TYPES:
        return f"order_type {order.order_type!r} is not one of {', '.join(ORDER_TYPES)}"
    if order.order_type == LIMIT:
        limit = order.limit_price
        if limit is None:
            return "limit order needs a limit_price, got None"
        if not math.isfinite(limit) or limit <= 0:
            return f"limit_price {limit!r} must be a positive number"
    return None


def bar_fill_price(order: OrderSubmitted, bar: BarReceived) -> float | None:
    """The raw price ``order`` fills at on ``bar`` (before slippage), or None if it does not."""
    if order.order_type == MARKET:
        return bar.open
    limit = order.limit_price
    if limit is None:
        return None
    if order.side == BUY:
        return min(bar.open, limit) if bar.low <= limit else None
    return max(bar.open, limit) if bar.high >= limit else None


def quote_price(
    side: str, bid: float | None, ask: float | None, last: float | None
) -> float | None:
    """The price a ``side`` order trades at against a quote: ask for buys, bid for sells.

    The last trade price stands in for a missing side; None if there is nothing to trade at.
    """
    price = ask if side == BUY else bid
    return price if price is not None else last


def tick_fill_price(
    order: OrderSubmitted, bid: float | None, ask: float | None, last: float | None
) -> float | None:
    """The raw price ``order`` fills at against this quote (before slippage), or None."""
    price = quote_price(order.side, bid, ask, last)
    if price is None:
        return None
    if order.order_type == MARKET:
        return price
    limit = order.limit_price
    if limit is None:
        return None
    if order.side == BUY:
        return price if price <= limit else None
    return price if price >= limit else None


def with_slippage(side: str, price: float, bps: float, limit: float | None = None) -> float:
    """``price`` moved ``bps`` against the trader (up for buys), never beyond ``limit``."""
    if side == BUY:
        slipped = price * (1.0 + bps / BPS)
        return min(slipped, limit) if limit is not None else slipped
    if side == SELL:
        slipped = price * (1.0 - bps / BPS)
        return max(slipped, limit) if limit is not None else slipped
    raise ValueError(f"side {side!r} is not one of {', '.join(SIDES)}")


def commission(qty: float, price: float, *, per_unit: float, bps: float, minimum: float) -> float:
    """The commission on a fill: per unit plus bps of notional, at least ``minimum``."""
    fee = abs(qty) * per_unit + abs(qty * price) * bps / BPS
    return max(fee, minimum)
