"""Event builders for the persistence tests: one realistic instance of every event type."""

from __future__ import annotations

from streams.events import (
    BarReceived,
    CashAdjusted,
    CommandIssued,
    CommandRefused,
    DailyLossBreached,
    DataDropped,
    DataRejected,
    ErrorRaised,
    Event,
    Heartbeat,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    PnlUpdated,
    PositionClosed,
    PositionUpdated,
    ReconciliationAdjusted,
    RunnerStatusChanged,
    SignalDetected,
    StateChanged,
    TickReceived,
    TradeExecuted,
    TradingStateChanged,
    WriteRefused,
)

T0 = 1_700_000_000_000_000_000


def tick(i: int = 0, symbol: str = "AAPL", **kw: object) -> TickReceived:
    """A quote tick at ``T0 + i`` ms."""
    ts = T0 + i * 1_000_000
    return TickReceived(
        symbol=symbol, bid=100.0 + i * 0.01, ask=100.02 + i * 0.01, size=1.0, ts_event=ts, **kw
    )  # type: ignore[arg-type]


def fill(i: int = 0, symbol: str = "AAPL", side: str = "buy", **kw: object) -> TradeExecuted:
    """A critical fill of one unit at a price that moves with ``i``."""
    return TradeExecuted(
        fill_id=f"f{i}",
        order_id=f"o{i}",
        strategy="sma",
        symbol=symbol,
        side=side,
        qty=1.0,
        price=100.0 + i % 7,
        commission=0.01,
        ts_event=T0 + i * 1_000_000,
        **kw,  # type: ignore[arg-type]
    )


def every_event_type() -> list[Event]:
    """One instance of each event type, with awkward values (unicode, big ints, floats)."""
    ts = T0 + 123_456_789
    return [
        TickReceived(symbol="AAPL", bid=1.1, ask=1.2, last=None, size=0.1, ts_event=ts),
        BarReceived(symbol="msft", open=1, high=2.5, low=0.5, close=2.0, volume=1e9, ts_event=ts),
        DataRejected(source="csv", symbol="X", field="bid", value="nan", reason="NaN é"),
        DataDropped(source="websocket", count=2, total=9, by_symbol={"X": 2}),
        SignalDetected(strategy="sma", symbol="AAPL", side="buy", strength=0.1 + 0.2),
        OrderSubmitted(order_id="o1", strategy="sma", symbol="AAPL", side="buy", qty=3.0),
        OrderAccepted(order_id="o1", strategy="sma", symbol="AAPL", correlation_id="c1"),
        OrderRejected(order_id="o2", strategy="sma", symbol="AAPL", reason="max_qty 5 > 4"),
        OrderCancelled(order_id="o3", strategy="sma", symbol="AAPL", causation_id="x"),
        fill(1),
        PositionUpdated(symbol="AAPL", qty=-2.5, avg_price=101.25, realized_pnl=-1e-12),
        PositionClosed(symbol="AAPL", realized_pnl=12.5),
        CashAdjusted(amount=10_000.0, reason="deposit"),
        PnlUpdated(realized=1.0, unrealized=-2.0, daily=-1.0, equity=9_999.0),
        DailyLossBreached(daily_pnl=-600.0, limit=-500.0, action="halt"),
        TradingStateChanged(state="halted", previous="active", reason="loss", actor="risk"),
        ReconciliationAdjusted(symbol="AAPL", engine_qty=1, broker_qty=2, broker_avg_price=3),
        StateChanged(
            path="risk.max_qty",
            value={"nested": [1, 2.5, None, "ü", 2**70]},
            actor="operator",
            metadata={"why": "test"},
        ),
        WriteRefused(path="positions.AAPL", actor="viewer", reason="not owner"),
        RunnerStatusChanged(component="runner", status="running", previous="ready"),
        Heartbeat(component="feed", count=2**40),
        CommandIssued(command="flatten", actor="op", args={"symbols": ["AAPL"], "n": 1}),
        CommandRefused(command="start", actor="viewer", reason="read-only"),
        ErrorRaised(component="bus", message="boom\n'\"", details={"trace": ["a", "b"]}),
    ]
