"""Account and risk events: cash, P&L figures, the daily-loss breach and trading state."""

from __future__ import annotations

import dataclasses

from streams import topics
from streams.events.base import Event

ACTIVE = "active"
HALTED = "halted"
REDUCING = "reducing"
TRADING_STATES = (ACTIVE, HALTED, REDUCING)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CashAdjusted(Event):
    """Cash added to or taken from the account outside trading (deposit, fee, reconciliation)."""

    TYPE = "cash_adjusted"
    CRITICAL = True
    TOPIC = topics.PNL

    amount: float
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PnlUpdated(Event):
    """P&L figures after marking positions to the latest prices (frequent, not critical).

    ``daily`` is measured from the equity at ``session_start`` (ns since the epoch; 0 when
    unknown), so a restarted engine can tell whether the stored figure belongs to today.
    """

    TYPE = "pnl_updated"
    TOPIC = topics.PNL
    CONFLATED = True

    realized: float
    unrealized: float
    daily: float
    equity: float
    drawdown: float = 0.0
    max_drawdown: float = 0.0
    session_start: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DailyLossBreached(Event):
    """Daily P&L fell below the configured limit; ``action`` is what the engine did about it."""

    TYPE = "daily_loss_breached"
    CRITICAL = True
    TOPIC = topics.RISK

    daily_pnl: float
    limit: float
    action: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TradingStateChanged(Event):
    """Trading became active, halted or reducing-only; ``actor`` is who or what decided."""

    TYPE = "trading_state_changed"
    CRITICAL = True
    TOPIC = topics.RISK

    state: str
    previous: str = ""
    reason: str = ""
    actor: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ReconciliationAdjusted(Event):
    """A difference between engine and broker found at start-up, and the broker's truth taken."""

    TYPE = "reconciliation_adjusted"
    CRITICAL = True
    TOPIC = topics.RECONCILIATION

    symbol: str
    engine_qty: float
    broker_qty: float
    broker_avg_price: float
    note: str = ""
