"""Chart history on demand: a pan or zoom back past the price chart's first point loads the
older prices and fills from the real event log, once the gesture settles (debounced, in
virtual time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bokeh.models import ColumnDataSource
from reactivex.testing import TestScheduler

from panel_app.aggregates import TradeAggregator
from panel_app.history import HistoryService
from panel_app.views.chart_history import ChartHistory, prepend
from persistence import EventLog
from streams.events import BarReceived, TickReceived, TradeExecuted
from tests import factories

NS = 1_000_000_000
T0 = 946_000_000 * NS  # 1999-12-24


def bar(symbol: str, i: int, close: float) -> BarReceived:
    """A flat bar in minute ``i``."""
    return factories.bar(symbol, close, ts_event=T0 + i * 60 * NS)


def fill(symbol: str, i: int, price: float, side: str) -> TradeExecuted:
    """A fill of one unit in minute ``i``."""
    return factories.fill(symbol, side, 1.0, price, ts_event=T0 + i * 60 * NS)


def fill_log(log: EventLog) -> None:
    for i in range(100):
        log.append(bar("AAPL", i, 100.0 + i))
        log.append(bar("MSFT", i, 300.0 + i))
    log.append(fill("AAPL", 10, 110.0, "buy"))
    log.append(fill("MSFT", 11, 311.0, "sell"))
    log.append(fill("AAPL", 20, 120.0, "sell"))
    log.flush()


def test_price_history_reads_one_symbols_prices_and_fills_in_the_range(tmp_path: Path) -> None:
    with EventLog(tmp_path / "h.duckdb") as log:
        fill_log(log)
        history = HistoryService(log, TradeAggregator())
        start, end = T0 + 5 * 60 * NS, T0 + 50 * 60 * NS
        got = history.price_history("AAPL", start, end, points=1_000)
        assert got["from"] == [start]
        assert got["t"] == [T0 + i * 60 * NS for i in range(5, 50)]
        assert got["price"] == [100.0 + i for i in range(5, 50)]
        assert got["fill_price"] == [110.0, 120.0] and got["fill_side"] == ["buy", "sell"]

        thin = history.price_history("AAPL", start, end, points=10)
        assert len(thin["t"]) <= 10 and thin["t"][-1] == got["t"][-1]  # the newest is kept
        assert thin["t"] == sorted(thin["t"])

        cut = history.price_history("AAPL", start, end, points=1_000, rows=15)
        assert cut["t"] == got["t"][-15:]  # the newest rows of the range, next to the chart
        assert cut["from"] == [cut["t"][0]]
        assert cut["fill_price"] == []  # both fills lie before what was read


def test_a_tick_charts_its_last_or_its_mid(tmp_path: Path) -> None:
    with EventLog(tmp_path / "t.duckdb") as log:
        log.append(TickReceived(symbol="EURUSD", last=1.1, ts_event=T0))
        log.append(TickReceived(symbol="EURUSD", bid=1.0, ask=1.2, ts_event=T0 + NS))
        log.flush()
        got = HistoryService(log, TradeAggregator()).price_history(
            "EURUSD", T0, T0 + 2 * NS, points=10
        )
    assert got["price"] == [1.1, 1.1]


def test_a_gesture_loads_history_once_it_settles_and_only_before_the_chart() -> None:
    scheduler = TestScheduler()
    loads: list[tuple[str, int, int]] = []
    shown: list[dict[str, list[Any]]] = []
    first = {"ns": 1_000}

    def load(symbol: str, start: int, end: int) -> dict[str, list[Any]]:
        loads.append((symbol, start, end))
        return {"from": [start], "t": [start], "price": [1.0]}

    history = ChartHistory(
        load, lambda: first["ns"], lambda: "AAPL", shown.append, quiet_s=0.3, scheduler=scheduler
    )
    # a drag: three steps 0.1 s apart, then rest; later a zoom that stays inside the chart
    for at, x0 in ((1.0, 900), (1.1, 800), (1.2, 700)):
        scheduler.schedule_absolute(at, lambda *_, x0=x0: history.on_range(x0, 2_000))
    scheduler.schedule_absolute(3.0, lambda *_: history.on_range(1_500, 2_000))
    scheduler.advance_to(1.45)
    assert loads == []  # still moving: nothing read yet
    scheduler.advance_to(5.0)
    assert loads == [("AAPL", 700, 1_000)]  # one read, of the range the user settled on
    assert history.loads == 1 and shown[0]["t"] == [700]

    history.dispose()
    scheduler.schedule_absolute(6.0, lambda *_: history.on_range(100, 2_000))
    scheduler.advance_to(8.0)
    assert history.loads == 1  # the session ended: nothing more


def test_nothing_loads_before_the_chart_has_a_first_point() -> None:
    scheduler = TestScheduler()
    loads: list[int] = []
    history = ChartHistory(
        lambda s, a, b: loads.append(a) or {},
        lambda: 0,
        lambda: "AAPL",
        lambda answer: None,
        scheduler=scheduler,
    )
    history.on_range(10, 20)
    scheduler.advance_to(5.0)
    assert loads == []


def test_prepend_puts_the_span_in_front_of_the_live_points() -> None:
    prices = ColumnDataSource({"t": [5_000], "price": [5.0]})
    marks = ColumnDataSource({"t": [5_000], "price": [5.0], "color": ["x"], "side": ["buy"]})
    held = prepend(
        prices,
        marks,
        {
            "from": [1_000],
            "t": [1_000, 2_000],
            "price": [1.0, 2.0],
            "fill_t": [2_000],
            "fill_price": [2.0],
            "fill_side": ["sell"],
        },
    )
    assert held == 3
    assert prices.data["price"] == [1.0, 2.0, 5.0]
    assert marks.data["price"] == [2.0, 5.0] and marks.data["color"][0] == "#d62728"


def test_price_charts_of_two_sessions_share_no_columns() -> None:
    """Bokeh extends a source's lists in place: one session's fills must never reach another
    session's chart (each chart starts, and restarts on a symbol change, with lists of its own)."""
    from engine.config import DashboardConfig
    from panel_app.push import SessionBridge
    from panel_app.views.charts import PriceChart

    def chart() -> PriceChart:
        return PriceChart(SessionBridge(None), DashboardConfig(), ["AAPL"], {}, lambda **_: None)

    first, second = chart(), chart()
    fill = factories.buy(1.0, 100.0, symbol="AAPL", ts_event=5)
    first.quote({"AAPL": {"last": 100.0, "ts": 1}})
    first.queue_fill(fill)
    first.flush_marks()

    assert first.markers.data["t"] and not second.markers.data["t"]
    second.symbol.options = ["AAPL", "MSFT"]
    second.symbol.value = "MSFT"  # the restart: new empty columns, not the first chart's
    assert not second.markers.data["t"] and first.markers.data["price"] == [100.0]
