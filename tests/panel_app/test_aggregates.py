"""TradeAggregator: P&L by symbol and by day kept up to date from events (no browser)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from panel_app.aggregates import TradeAggregator
from streams.bus import EventBus
from streams.events import PnlUpdated, PositionClosed, PositionUpdated
from tests.factories import buy

DAY1 = int(dt.datetime(2026, 1, 5, 15, tzinfo=dt.UTC).timestamp() * 1e9)
DAY2 = int(dt.datetime(2026, 1, 6, 15, tzinfo=dt.UTC).timestamp() * 1e9)


def fill(seq: int, symbol: str, ts: int, *, qty: float = 10.0, price: float = 100.0) -> Any:
    """A buy of ``qty`` at ``price`` with a commission of 1, stored at ``seq``."""
    return buy(qty, price, symbol, commission=1.0, ts_event=ts, seq=seq)


def test_by_symbol_and_by_day_fold_trades_and_realized_deltas() -> None:
    agg = TradeAggregator()
    agg.on_event(fill(1, "AAPL", DAY1))
    agg.on_event(fill(2, "MSFT", DAY1, qty=2.0, price=50.0))
    agg.on_event(
        PositionUpdated(symbol="AAPL", qty=10.0, avg_price=100.0, realized_pnl=5.0, ts_event=DAY1)
    )
    agg.on_event(fill(3, "AAPL", DAY2))
    agg.on_event(PositionClosed(symbol="AAPL", realized_pnl=12.0, ts_event=DAY2))

    by_symbol = {r["symbol"]: r for r in agg.by_symbol()}
    assert by_symbol["AAPL"]["trades"] == 2
    assert by_symbol["AAPL"]["volume"] == 2_000.0
    assert by_symbol["AAPL"]["realized"] == 12.0
    assert by_symbol["AAPL"]["net"] == 12.0 - 2.0
    assert by_symbol["MSFT"]["volume"] == 100.0

    by_day = {r["day"]: r for r in agg.by_day()}
    assert by_day["2026-01-05"]["trades"] == 2
    assert by_day["2026-01-05"]["realized"] == 5.0
    assert by_day["2026-01-06"]["realized"] == 7.0  # the delta, not the running total
    assert by_day["2026-01-06"]["net"] == 7.0 - 1.0
    assert agg.trade_count() == 3


def test_replayed_trades_are_not_counted_twice() -> None:
    agg = TradeAggregator()
    agg.on_event(fill(5, "AAPL", DAY1))
    version = agg.version
    agg.on_event(fill(5, "AAPL", DAY1))
    agg.on_event(fill(4, "AAPL", DAY1))
    assert agg.trade_count() == 1
    assert agg.version == version


def test_equity_curve_is_spaced_and_bounded() -> None:
    agg = TradeAggregator(curve_points=3, curve_step_s=1.0)
    for i in range(10):
        agg.on_event(
            PnlUpdated(
                realized=0.0,
                unrealized=0.0,
                daily=0.0,
                equity=100.0 + i,
                drawdown=float(i),
                ts_event=DAY1 + i * 500_000_000,  # every 0.5 s: every other one is kept
            )
        )
    curve = agg.curve()
    assert len(curve) == 3
    assert [e for _, e, _ in curve] == [104.0, 106.0, 108.0]
    assert agg.max_drawdown == 9.0


def test_trade_page_bounds_newest_first() -> None:
    agg = TradeAggregator()
    for seq in range(1, 8):
        agg.on_event(fill(seq * 10, "AAPL", DAY1))
    assert agg.trade_page_bounds(0, 3) == (49, 70)
    assert agg.trade_page_bounds(1, 3) == (19, 40)
    assert agg.trade_page_bounds(2, 3) == (9, 10)
    assert agg.trade_page_bounds(3, 3) is None


def test_attached_aggregator_follows_the_bus_and_detaches() -> None:
    bus = EventBus(threaded=False, name="agg-test")
    before = bus.subscriber_count()
    agg = TradeAggregator().attach(bus)
    assert bus.subscriber_count() == before + 3
    bus.publish(fill(0, "AAPL", DAY1))
    assert agg.by_symbol()[0]["trades"] == 1
    agg.detach()
    assert bus.subscriber_count() == before
