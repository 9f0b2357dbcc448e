"""The event catalogue: every fact that flows on the bus and into the log.

Each family lives in its own module; this package re-exports them. ``event_from_dict``
rebuilds any of them from its stored form.
"""

from streams.events.account import (
    ACTIVE,
    HALTED,
    REDUCING,
    TRADING_STATES,
    CashAdjusted,
    DailyLossBreached,
    PnlUpdated,
    ReconciliationAdjusted,
    TradingStateChanged,
)
from streams.events.base import (
    ENVELOPE_FIELDS,
    Event,
    event_class,
    event_from_dict,
    event_types,
    new_event_id,
)
from streams.events.market import BarReceived, DataDropped, DataRejected, TickReceived
from streams.events.system import (
    CommandIssued,
    CommandRefused,
    ErrorRaised,
    Heartbeat,
    RunnerStatusChanged,
    StateChanged,
    WriteRefused,
)
from streams.events.trading import (
    BUY,
    SELL,
    SIDES,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionUpdated,
    SignalDetected,
    TradeExecuted,
)

__all__ = [
    "ACTIVE",
    "BUY",
    "ENVELOPE_FIELDS",
    "HALTED",
    "REDUCING",
    "SELL",
    "SIDES",
    "TRADING_STATES",
    "BarReceived",
    "CashAdjusted",
    "CommandIssued",
    "CommandRefused",
    "DailyLossBreached",
    "DataDropped",
    "DataRejected",
    "ErrorRaised",
    "Event",
    "Heartbeat",
    "OrderAccepted",
    "OrderCancelled",
    "OrderRejected",
    "OrderSubmitted",
    "PnlUpdated",
    "PositionClosed",
    "PositionUpdated",
    "ReconciliationAdjusted",
    "RunnerStatusChanged",
    "SignalDetected",
    "StateChanged",
    "TickReceived",
    "TradeExecuted",
    "TradingStateChanged",
    "WriteRefused",
    "event_class",
    "event_from_dict",
    "event_types",
    "new_event_id",
]
