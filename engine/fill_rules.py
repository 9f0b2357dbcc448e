"""The paper broker's fill rules as pure functions: when an order fills, at what price, for what.

Bars (``ts_event`` is the bar's close): an order accepted at clock time ``t`` fills on the
first bar of its symbol with ``ts_event > t``, never on the bar the strategy was looking at nor
on another symbol's bar of the same time (no look-ahead). The rules are backtrader's
(``BackBroker``), without its slippage:

* market: at the bar's open;
* limit ``L``: a buy fills if ``low <= L``, at ``min(open, L)`` (a gap down through the limit
  fills at the better open); a sell if ``high >= L``, at ``max(open, L)``;
* stop ``S``: a buy triggers and fills if the bar reaches ``S``: at the open when it opens at
  or above ``S`` (a gap through the stop), else at ``S`` when ``high >= S``; a sell mirrors it
  (open at or below ``S``: the open; else ``S`` when ``low <= S``);
* stop-limit ``S``/``L``: triggers as a stop; on the bar that triggers it, a gap through ``S``
  makes it a limit ``L`` at once (filled by the limit rule on that bar); a trigger during the
  bar fills at ``S`` if the limit allows it (buy: ``L >= S``), else - for a buy on a bar that
  closes below its open - at ``L`` when ``L >= close`` (sell: mirrored). A triggered order
  that did not fill is a plain limit ``L`` from the next bar on.

Quotes: a buy fills at the ask and a sell at the bid; when a side is unknown the last trade
price stands in. A buy limit fills if that price is ``<= limit``, a sell limit if ``>= limit``,
at that price (which is never worse than the limit). A buy stop triggers when that price is
``>= stop`` (a sell: ``<= stop``) and fills there; a stop-limit then acts as its limit.

Slippage moves the price against the trader by ``bps`` basis points; for a limit order it is
capped at the limit, so a limit order never fills worse than its limit. Commission is
``qty * per_unit + notional * bps / 10_000``, at least ``minimum``.
"""

from __future__ import annotations

import math

from streams.events import BUY, SELL, SIDES, BarReceived, OrderSubmitted

MARKET = "market"
LIMIT = "limit"
STOP = "stop"
STOP_LIMIT = "stop_limit"
ORDER_TYPES = (MARKET, LIMIT, STOP, STOP_LIMIT)

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
    for field, types in _PRICES_NEEDED:
        if order.order_type in types:
            price = getattr(order, field)
            if price is None:
                return f"{order.order_type} order needs a {field}, got None"
            if not _positive(price):
                return f"{field} {price!r} must be a positive number"
    return None


#: The prices an order type needs, checked in this order.
_PRICES_NEEDED = (("limit_price", (LIMIT, STOP_LIMIT)), ("stop_price", (STOP, STOP_LIMIT)))


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def bar_fill_price(
    order: OrderSubmitted, bar: BarReceived, triggered: bool = False
) -> tuple[float | None, bool]:
    """``(raw price, triggered)``: the price ``order`` fills at on ``bar`` (before slippage),
    or None if it does not; and whether a stop order is triggered once this bar is seen.
    ``triggered`` says a stop-limit was triggered by an earlier bar (it is then a limit)."""
    kind = order.order_type
    if kind == MARKET:
        return bar.open, triggered
    if kind == LIMIT or (kind == STOP_LIMIT and triggered):
        return _limit_fill(order.side, order.limit_price, bar), triggered
    stop = order.stop_price
    if stop is None:
        return None, triggered
    buy = order.side == BUY
    gapped = bar.open >= stop if buy else bar.open <= stop
    reached = gapped or (bar.high >= stop if buy else bar.low <= stop)
    if not reached:
        return None, False
    if kind == STOP:
        return (bar.open if gapped else stop), True
    limit = order.limit_price
    if kind != STOP_LIMIT or limit is None:
        return None, True
    if gapped:
        return _limit_fill(order.side, limit, bar), True
    if (limit >= stop) if buy else (limit <= stop):
        return stop, True
    falling = bar.open > bar.close
    if buy and falling and limit >= bar.close:
        return limit, True
    if not buy and not falling and limit <= bar.close:
        return limit, True
    return None, True


def _limit_fill(side: str, limit: float | None, bar: BarReceived) -> float | None:
    if limit is None:
        return None
    if side == BUY:
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
    order: OrderSubmitted,
    bid: float | None,
    ask: float | None,
    last: float | None,
    triggered: bool = False,
) -> tuple[float | None, bool]:
    """``(raw price, triggered)`` of ``order`` against this quote (before slippage): the price
    or None, and whether a stop order is triggered (``triggered``: by an earlier quote)."""
    price = quote_price(order.side, bid, ask, last)
    if price is None:
        return None, triggered
    kind = order.order_type
    buy = order.side == BUY
    if kind in (STOP, STOP_LIMIT) and not triggered:
        stop = order.stop_price
        if stop is None or not (price >= stop if buy else price <= stop):
            return None, False
        triggered = True
        if kind == STOP:
            return price, True
    if kind in (MARKET, STOP):
        return price, triggered
    limit = order.limit_price
    if limit is None:
        return None, triggered
    if buy:
        return (price if price <= limit else None), triggered
    return (price if price >= limit else None), triggered


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
