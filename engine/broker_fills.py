"""The paper broker's fills: how much of a working order one fill takes, at what price and fee,
and the events that report it.

Pure functions over a :class:`WorkingOrder` (an accepted order and how far it has got); the
:class:`~engine.broker.PaperBroker` decides *when* an order fills (:mod:`engine.fill_rules`),
books the :class:`~engine.broker_account.BrokerFill` these build and publishes the events.

Each fill has the deterministic id ``{order_id}-f{n}``. An order fills completely
(``leaves_qty`` 0) unless a cap (``max_volume_fraction`` of a bar's volume) limits a fill to
that quantity: the rest stays working for the next bars (``leaves_qty`` > 0 on each partial
fill). A trade done at the broker outside the engine is an *external* fill ``ext-{n}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from engine.broker_account import BrokerFill
from engine.config import BrokerConfig
from engine.fill_rules import LIMIT, STOP_LIMIT, commission, with_slippage
from state.model import QTY_EPSILON
from streams.events import SIDES, ErrorRaised, Event, OrderSubmitted, TradeExecuted

#: A symbol's last known quote: bid, ask and last trade price (None where not seen yet).
Quote = tuple[float | None, float | None, float | None]


@dataclasses.dataclass(slots=True)
class WorkingOrder:
    """An accepted order that has not filled completely yet."""

    order: OrderSubmitted
    after_ns: int  # accepted at this clock time: fills only on a bar of a later time
    triggered: bool = False  # a stop-limit whose stop was reached: a limit order now
    filled: float = 0.0  # quantity filled so far (partial fills)
    fills: int = 0

    @property
    def leaves(self) -> float:
        """The quantity still to fill."""
        return float(self.order.qty) - self.filled

    def resume(self, progress: Mapping[str, Any] | None) -> None:
        """Go on from the progress the account file kept for this order (after a restart)."""
        if progress:
            self.filled = float(progress.get("filled", 0.0))
            self.fills = int(progress.get("fills", 0))
            self.triggered = bool(progress.get("triggered", False))


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedFill:
    """One fill of a working order, ready to book: the fill and what it leaves working."""

    fill: BrokerFill
    leaves: float
    done: bool


def plan_fill(
    working: WorkingOrder, raw_price: float, config: BrokerConfig, now: int, cap: float | None
) -> PlannedFill | None:
    """A fill of what ``working`` leaves (or at most ``cap``) at ``raw_price`` with slippage and
    commission applied; None when there is nothing to fill."""
    order = working.order
    qty = working.leaves if cap is None else min(working.leaves, cap)
    if qty <= QTY_EPSILON:
        return None
    leaves = working.leaves - qty
    done = leaves <= QTY_EPSILON
    if done:
        qty, leaves = working.leaves, 0.0
    limit = order.limit_price if order.order_type in (LIMIT, STOP_LIMIT) else None
    price = with_slippage(order.side, raw_price, config.slippage_bps, limit)
    fee = commission(
        qty,
        price,
        per_unit=config.commission_per_unit,
        bps=config.commission_bps,
        minimum=config.commission_min,
    )
    fill = BrokerFill(
        fill_id=f"{order.order_id}-f{working.fills + 1}",
        order_id=order.order_id,
        symbol=order.symbol,
        side=order.side,
        qty=float(qty),
        price=price,
        commission=fee,
        ts=now,
    )
    return PlannedFill(fill, leaves, done)


def executed(order: OrderSubmitted, fill: BrokerFill, leaves: float, cause: Event) -> TradeExecuted:
    """The ``trade_executed`` that reports a booked fill of ``order`` leaving ``leaves``."""
    return TradeExecuted(
        fill_id=fill.fill_id,
        order_id=order.order_id,
        strategy=order.strategy,
        symbol=order.symbol,
        side=order.side,
        qty=fill.qty,
        price=fill.price,
        commission=fill.commission,
        leaves_qty=leaves,
        ts_event=fill.ts,
        correlation_id=order.correlation_id,
        causation_id=cause.event_id,
    )


def not_booked(
    order: OrderSubmitted, fill: BrokerFill, exc: Exception, cause: Event
) -> ErrorRaised:
    """The ``error_raised`` that reports a fill the account could not book."""
    return ErrorRaised(
        component="broker",
        message=str(exc),
        error_type=type(exc).__name__,
        details={"order_id": order.order_id, "fill_id": fill.fill_id},
        ts_event=fill.ts,
        causation_id=cause.event_id,
    )


def check_external(side: str, qty: float, price: float, commission: float) -> None:
    """ValueError unless an external fill's side is known and its amounts are positive."""
    if side not in SIDES:
        raise ValueError(f"side {side!r} is not one of {', '.join(SIDES)}")
    if not qty > 0 or not price > 0 or not commission >= 0:
        raise ValueError(
            f"external fill needs qty > 0, price > 0, commission >= 0; "
            f"got qty={qty!r} price={price!r} commission={commission!r}"
        )


def external_fill(
    symbol: str, side: str, qty: float, price: float, commission: float, *, number: int, now: int
) -> BrokerFill:
    """The ``number``-th fill booked outside the engine (checked by :func:`check_external`)."""
    return BrokerFill(
        fill_id=f"ext-{number}",
        order_id="",
        symbol=symbol,
        side=side,
        qty=float(qty),
        price=float(price),
        commission=float(commission),
        ts=now,
        external=True,
    )


def merge_quote(
    old: Quote | None, bid: float | None, ask: float | None, last: float | None
) -> Quote:
    """The quote after a tick: each side the tick leaves out keeps its old value."""
    if old is not None:
        bid = bid if bid is not None else old[0]
        ask = ask if ask is not None else old[1]
        last = last if last is not None else old[2]
    return (bid, ask, last)
