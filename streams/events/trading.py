"""Trading events: signals, the order lifecycle, executions and positions.

Everything except a signal is critical: it is committed to the event log before it is
applied to state or seen by any subscriber.
"""

from __future__ import annotations

import dataclasses

from streams import topics
from streams.events.base import Event

BUY = "buy"
SELL = "sell"
SIDES = (BUY, SELL)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SignalDetected(Event):
    """A strategy saw something worth acting on (``side`` is buy, sell or flat)."""

    TYPE = "signal_detected"

    strategy: str
    symbol: str
    side: str
    strength: float = 1.0
    reason: str = ""

    def default_topic(self) -> str:
        return topics.signals(self.strategy)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _OrderEvent(Event):
    """The fields every order lifecycle event starts with; published on its strategy's orders."""

    order_id: str
    strategy: str
    symbol: str

    def default_topic(self) -> str:
        return topics.orders(self.strategy)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OrderSubmitted(_OrderEvent):
    """An order a strategy or operator asked for, before risk checks."""

    TYPE = "order_submitted"
    CRITICAL = True

    side: str
    qty: float
    order_type: str = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    actor: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OrderAccepted(_OrderEvent):
    """Risk checks passed and the broker took the order."""

    TYPE = "order_accepted"
    CRITICAL = True


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OrderRejected(_OrderEvent):
    """The order was refused by risk or by the broker; ``reason`` says which rule and value."""

    TYPE = "order_rejected"
    CRITICAL = True

    reason: str

    @classmethod
    def of(cls, order: OrderSubmitted, reason: str, ts_event: int) -> OrderRejected:
        """The rejection of ``order``, correlated with it and caused by its submission."""
        return cls(
            order_id=order.order_id,
            strategy=order.strategy,
            symbol=order.symbol,
            reason=reason,
            ts_event=ts_event,
            correlation_id=order.correlation_id,
            causation_id=order.event_id,
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OrderCancelled(_OrderEvent):
    """An open order was cancelled (by its strategy, an operator, or a halt)."""

    TYPE = "order_cancelled"
    CRITICAL = True

    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TradeExecuted(Event):
    """A fill: ``qty`` of ``symbol`` bought or sold at ``price``; ``leaves_qty`` is still open."""

    TYPE = "trade_executed"
    CRITICAL = True

    fill_id: str
    order_id: str
    strategy: str
    symbol: str
    side: str
    qty: float
    price: float
    commission: float = 0.0
    leaves_qty: float = 0.0

    def default_topic(self) -> str:
        return topics.fills(self.strategy)

    @property
    def signed_qty(self) -> float:
        """Quantity with sign: positive for a buy, negative for a sell."""
        return self.qty if self.side == BUY else -self.qty


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _PositionEvent(Event):
    """The field every position event starts with; published on that symbol's positions."""

    symbol: str

    def default_topic(self) -> str:
        return topics.positions(self.symbol)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PositionUpdated(_PositionEvent):
    """The position in ``symbol`` after a fill or reconciliation (signed ``qty``)."""

    TYPE = "position_updated"
    CRITICAL = True

    qty: float
    avg_price: float
    realized_pnl: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PositionClosed(_PositionEvent):
    """The position in ``symbol`` returned to zero; ``realized_pnl`` is its lifetime total."""

    TYPE = "position_closed"
    CRITICAL = True

    realized_pnl: float = 0.0
