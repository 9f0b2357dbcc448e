"""The open-orders fold: an order enters on submission and leaves when done.

``orders[order_id]`` holds the open orders only: it is removed when rejected, cancelled or
completely filled (``leaves_qty`` 0 on a fill). Events for an order that is not open (e.g. a
late acceptance after a cancel) change nothing.
"""

from __future__ import annotations

from typing import Any

from state.model import FrozenDict, State, assoc, dissoc, merge
from streams.events import (
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    TradeExecuted,
)

SUBMITTED = "submitted"
ACCEPTED = "accepted"
PARTIALLY_FILLED = "partially_filled"


def apply_order_submitted(state: State, event: OrderSubmitted) -> dict[str, Any]:
    """A new open order, nothing filled yet."""
    extra = {"stop_price": event.stop_price} if event.stop_price is not None else {}
    order = FrozenDict(
        **extra,
        order_id=event.order_id,
        strategy=event.strategy,
        symbol=event.symbol,
        side=event.side,
        qty=float(event.qty),
        filled_qty=0.0,
        leaves_qty=float(event.qty),
        order_type=event.order_type,
        limit_price=event.limit_price,
        status=SUBMITTED,
        ts=event.ts_event,
    )
    return {"orders": assoc(state["orders"], event.order_id, order)}


def apply_order_accepted(state: State, event: OrderAccepted) -> dict[str, Any]:
    """The open order is now working at the broker."""
    orders = state["orders"]
    order = orders.get(event.order_id)
    if order is None or order["status"] != SUBMITTED:
        return {}
    return {"orders": assoc(orders, event.order_id, assoc(order, "status", ACCEPTED))}


def apply_order_done(state: State, event: OrderRejected | OrderCancelled) -> dict[str, Any]:
    """A rejected or cancelled order is no longer open."""
    orders = state["orders"]
    if event.order_id not in orders:
        return {}
    return {"orders": dissoc(orders, event.order_id)}


def apply_trade(state: State, event: TradeExecuted) -> dict[str, Any]:
    """A fill reduces the order's open quantity; a complete fill closes it."""
    orders = state["orders"]
    order = orders.get(event.order_id)
    if order is None:
        return {}
    if event.leaves_qty <= 0.0:
        return {"orders": dissoc(orders, event.order_id)}
    changed = merge(
        order,
        {
            "filled_qty": order["filled_qty"] + event.qty,
            "leaves_qty": float(event.leaves_qty),
            "status": PARTIALLY_FILLED,
        },
    )
    return {"orders": assoc(orders, event.order_id, changed)}
