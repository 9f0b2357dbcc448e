"""Event builders for the persistence tests: one realistic instance of every event type."""

from __future__ import annotations

from streams import events as ev

T0 = 1_700_000_000_000_000_000


def tick(i: int = 0, symbol: str = "AAPL", **kw: object) -> ev.TickReceived:
    """A quote tick at ``T0 + i`` ms."""
    ts = T0 + i * 1_000_000
    return ev.TickReceived(
        symbol=symbol,
        bid=100.0 + i * 0.01,
        ask=100.02 + i * 0.01,
        size=1.0,
        ts_event=ts,
        **kw,  # type: ignore[arg-type]
    )


def fill(i: int = 0, symbol: str = "AAPL", side: str = "buy", **kw: object) -> ev.TradeExecuted:
    """A critical fill of one unit at a price that moves with ``i``."""
    return ev.TradeExecuted(
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


def every_event_type() -> list[ev.Event]:
    """One instance of each event type, with awkward values (unicode, big ints, floats)."""
    ts = T0 + 123_456_789
    return [
        ev.TickReceived(symbol="AAPL", bid=1.1, ask=1.2, last=None, size=0.1, ts_event=ts),
        ev.BarReceived(
            symbol="msft", open=1, high=2.5, low=0.5, close=2.0, volume=1e9, ts_event=ts
        ),
        ev.DataRejected(source="csv", symbol="X", field="bid", value="nan", reason="NaN é"),
        ev.DataDropped(source="websocket", count=2, total=9, by_symbol={"X": 2}),
        ev.SignalDetected(strategy="sma", symbol="AAPL", side="buy", strength=0.1 + 0.2),
        ev.OrderSubmitted(order_id="o1", strategy="sma", symbol="AAPL", side="buy", qty=3.0),
        ev.OrderAccepted(order_id="o1", strategy="sma", symbol="AAPL", correlation_id="c1"),
        ev.OrderRejected(order_id="o2", strategy="sma", symbol="AAPL", reason="max_qty 5 > 4"),
        ev.OrderCancelled(order_id="o3", strategy="sma", symbol="AAPL", causation_id="x"),
        fill(1),
        ev.PositionUpdated(symbol="AAPL", qty=-2.5, avg_price=101.25, realized_pnl=-1e-12),
        ev.PositionClosed(symbol="AAPL", realized_pnl=12.5),
        ev.CashAdjusted(amount=10_000.0, reason="deposit"),
        ev.PnlUpdated(realized=1.0, unrealized=-2.0, daily=-1.0, equity=9_999.0),
        ev.DailyLossBreached(daily_pnl=-600.0, limit=-500.0, action="halt"),
        ev.TradingStateChanged(state="halted", previous="active", reason="loss", actor="risk"),
        ev.ReconciliationAdjusted(symbol="AAPL", engine_qty=1, broker_qty=2, broker_avg_price=3),
        ev.StateChanged(
            path="risk.max_qty",
            value={"nested": [1, 2.5, None, "ü", 2**70]},
            actor="operator",
            metadata={"why": "test"},
        ),
        ev.WriteRefused(path="positions.AAPL", actor="viewer", reason="not owner"),
        ev.RunnerStatusChanged(component="runner", status="running", previous="ready"),
        ev.Heartbeat(component="feed", count=2**40),
        ev.CommandIssued(command="flatten", actor="op", args={"symbols": ["AAPL"], "n": 1}),
        ev.CommandRefused(command="start", actor="viewer", reason="read-only"),
        ev.ErrorRaised(component="bus", message="boom\n'\"", details={"trace": ["a", "b"]}),
    ]
