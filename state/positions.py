"""The positions fold: average-cost position math and the events that set a position.

A position is ``{qty, avg_price, realized_pnl}`` with a signed ``qty`` (short < 0). Fills
follow average cost: adding to a position moves the average; reducing realizes P&L on the
closed part at ``(price - avg_price) * closed_qty`` (sign flipped for a short) and leaves the
average alone; a fill through zero realizes the whole old position and opens the remainder at
the fill price. Commissions are not part of realized P&L here; the account carries them.
"""

from __future__ import annotations

from typing import Any

from state.model import QTY_EPSILON, FrozenDict, State, assoc, empty_position
from streams.events import (
    PositionClosed,
    PositionUpdated,
    ReconciliationAdjusted,
    TradeExecuted,
)


def fill_position(
    position: FrozenDict | None, signed_qty: float, price: float
) -> tuple[FrozenDict, float]:
    """The position after a fill of ``signed_qty`` (buy > 0) at ``price``, and the P&L realized."""
    pos = position if position is not None else empty_position()
    qty: float = pos["qty"]
    avg: float = pos["avg_price"]
    realized: float = pos["realized_pnl"]
    new_qty = qty + signed_qty
    if abs(new_qty) < QTY_EPSILON:
        new_qty = 0.0
    gained = 0.0
    if qty == 0.0 or (qty > 0) == (signed_qty > 0):
        new_avg = (qty * avg + signed_qty * price) / new_qty if new_qty else 0.0
    else:
        closed = min(abs(signed_qty), abs(qty))
        gained = closed * (price - avg) if qty > 0 else closed * (avg - price)
        if new_qty == 0.0:
            new_avg = 0.0
        elif (new_qty > 0) == (qty > 0):
            new_avg = avg
        else:
            new_avg = price
    new_pos = FrozenDict(qty=new_qty, avg_price=new_avg, realized_pnl=realized + gained)
    return new_pos, gained


def apply_trade(state: State, event: TradeExecuted) -> dict[str, Any]:
    """A fill: the position moves and the account pays for it (section updates)."""
    positions = state["positions"]
    new_pos, gained = fill_position(positions.get(event.symbol), event.signed_qty, event.price)
    account = state["account"]
    new_account = FrozenDict(account)
    dict.update(
        new_account,
        cash=account["cash"] - event.signed_qty * event.price - event.commission,
        commissions=account["commissions"] + event.commission,
        realized_pnl=account["realized_pnl"] + gained,
    )
    return {"positions": assoc(positions, event.symbol, new_pos), "account": new_account}


def apply_position_updated(state: State, event: PositionUpdated) -> dict[str, Any]:
    """A notification derived from the state after a fill: it changes nothing.

    Positions move only with fills and reconciliation. Setting them from this event would wind
    a position back when two fills of one symbol are applied before their notifications."""
    return {}


def apply_position_closed(state: State, event: PositionClosed) -> dict[str, Any]:
    """A notification that a fill took the position to zero: it changes nothing (see above)."""
    return {}


def apply_reconciliation(state: State, event: ReconciliationAdjusted) -> dict[str, Any]:
    """Take the broker's quantity and average price; the realized P&L history is kept."""
    old = state["positions"].get(event.symbol) or empty_position()
    qty = float(event.broker_qty)
    pos = FrozenDict(
        qty=qty,
        avg_price=float(event.broker_avg_price) if qty else 0.0,
        realized_pnl=old["realized_pnl"],
    )
    return {"positions": assoc(state["positions"], event.symbol, pos)}
