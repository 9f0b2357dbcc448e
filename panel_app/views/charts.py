"""The dashboard's two live charts, built per session (a Bokeh model belongs to one document).

* :func:`price_chart` -- one symbol's price line and its fills as triangles (green buys, red
  sells), both at the time of the event they show (the data's time in a replay);
* :func:`equity_chart` -- equity (left axis) and drawdown (right axis, a shaded area);
* :class:`PriceChart` and :class:`EquityChart` -- one session's charts with their sources,
  fed by :class:`~panel_app.views.dashboard.DashboardView`.

Axis ranges are
computed in the browser and never sent back (``syncable = False``): each would be a message and
a document patch per session per repaint.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models import (
    ColumnDataSource,
    DataRange1d,
    DatetimeTickFormatter,
    LinearAxis,
    NumeralTickFormatter,
)
from bokeh.plotting import figure

from engine.config import DashboardConfig
from panel_app.history import HistoryService
from panel_app.push import SessionBridge, loop_scheduler
from panel_app.views.chart_history import ChartHistory, in_thread, prepend
from streams.events import TradeExecuted

#: Chart heights (px): with the KPIs, positions and trades they fill one 1440x900 screen.
PRICE_CHART_HEIGHT = 290
EQUITY_CHART_HEIGHT = 190
TOOLS = "pan,wheel_zoom,box_zoom,reset"


def date_ticks() -> DatetimeTickFormatter:
    """Ticks as clocks and calendars show them (a replay's are the data's dates)."""
    return DatetimeTickFormatter(
        seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hourmin="%H:%M", hours="%H:%M"
    )


def price_chart(prices: ColumnDataSource, fills: ColumnDataSource) -> figure:
    """Price line (``t``, ``price``) and fill markers (``t``, ``price``, ``color``)."""
    fig = figure(
        height=PRICE_CHART_HEIGHT,
        x_axis_type="datetime",
        title="Price and fills",
        sizing_mode="stretch_width",
        tools=TOOLS,
        css_classes=["sl-price-chart"],
    )
    fig.xaxis.formatter = date_ticks()
    fig.line("t", "price", source=prices, line_width=1.5)
    fig.scatter("t", "price", source=fills, color="color", size=9, marker="triangle")
    _local_ranges(fig)
    return fig


def equity_chart(source: ColumnDataSource) -> figure:
    """Equity (``t``, ``equity``) on the left axis and drawdown (``drawdown`` >= 0) as a
    shaded area on its own right axis."""
    fig = figure(
        height=EQUITY_CHART_HEIGHT,
        x_axis_type="datetime",
        title="Equity and drawdown",
        sizing_mode="stretch_width",
        tools=TOOLS,
    )
    equity = fig.line("t", "equity", source=source, line_width=2, legend_label="equity")
    drawdown = fig.varea(
        "t",
        y1=0,
        y2="drawdown",
        source=source,
        y_range_name="drawdown",
        fill_color="#d62728",
        fill_alpha=0.25,
        legend_label="drawdown",
    )
    assert isinstance(fig.y_range, DataRange1d)
    fig.y_range.renderers = [equity]  # each series on its own scale
    fig.extra_y_ranges = {"drawdown": DataRange1d(renderers=[drawdown])}
    fig.add_layout(LinearAxis(y_range_name="drawdown", axis_label="drawdown"), "right")
    fig.legend.location = "top_left"
    fig.legend.background_fill_alpha = 0.5
    fig.xaxis.formatter = date_ticks()
    fig.yaxis[0].formatter = NumeralTickFormatter(format="0,0")
    _local_ranges(fig)
    fig.extra_y_ranges["drawdown"].syncable = False
    return fig


def _local_ranges(fig: figure) -> None:
    fig.x_range.syncable = False
    fig.y_range.syncable = False


class EquityChart:
    """One session's equity and drawdown chart: the aggregated curve when the session opens,
    then one point per throttled P&L update (at most ``points`` kept)."""

    def __init__(self, points: int) -> None:
        self._points = points
        self.source = ColumnDataSource(
            {"t": [], "equity": [], "drawdown": []}, name="equity-source"
        )
        self.figure = equity_chart(self.source)

    def show_curve(self, curve: list[tuple[int, float, float]]) -> None:
        """Replace the line with ``curve``: ``(ts_ns, equity, drawdown)`` points, oldest first."""
        if curve:
            self.source.data = {
                "t": [pd.Timestamp(ts, unit="ns") for ts, _, _ in curve],
                "equity": [e for _, e, _ in curve],
                "drawdown": [d for _, _, d in curve],
            }

    def add(self, pnl: Mapping[str, Any], as_of_ns: int) -> None:
        """One P&L update (an empty one, before any trading, adds nothing)."""
        if not pnl:
            return
        self.source.stream(
            {
                "t": [pd.Timestamp(as_of_ns, unit="ns")],
                "equity": [float(pnl["equity"])],
                "drawdown": [float(pnl["drawdown"])],
            },
            rollover=self._points,
        )


#: Chart ranges a user can pick (seconds shown; 0 = everything kept).
CHART_WINDOWS = {"everything": 0, "last minute": 60, "last 5 minutes": 300, "last hour": 3_600}
MARKER_COLUMNS = ("t", "price", "color", "side")


def no_markers() -> dict[str, Any]:
    """Empty marker columns: new lists every time (Bokeh extends a source's lists in place)."""
    return {column: [] for column in MARKER_COLUMNS}


class PriceChart:
    """One session's price chart: the chosen symbol's quotes at their data time, its fills as
    markers, the symbol and window choosers, and (with a history service) earlier prices
    loaded when the user pans or zooms back before the first point.

    Runs on the session's loop, except :meth:`queue_fill` (engine thread). ``follow``: other
    figures (the equity chart) that show the same window. ``remember(**prefs)`` saves the
    user's choices.
    """

    def __init__(
        self,
        bridge: SessionBridge,
        config: DashboardConfig,
        symbols: list[str],
        prefs: Mapping[str, Any],
        remember: Callable[..., None],
        history: HistoryService | None = None,
        follow: tuple[figure, ...] = (),
    ) -> None:
        self._bridge = bridge
        self._config = config
        self._remember = remember
        self._history = history
        # Filled on the engine thread, emptied on the session loop (deque ends are thread-safe).
        self._pending: collections.deque[TradeExecuted] = collections.deque()
        self.charted_ns = 0  # data time of the newest point
        self._start_ns = 0  # and of the first
        self._rollover = config.chart_points  # points kept (more once history is loaded)
        self.prices = ColumnDataSource({"t": [], "price": []}, name="price-source")
        self.markers = ColumnDataSource(no_markers(), name="fill-markers")
        self.figure = price_chart(self.prices, self.markers)
        self._figures = (self.figure, *follow)
        if history is not None:  # scrolling back before the first point loads history
            loader = ChartHistory(
                self._load_history,
                lambda: self._start_ns,
                lambda: self.symbol.value,
                self._extend,
                scheduler=loop_scheduler(bridge),
                run=in_thread,
            )
            loader.watch(self.figure)
            bridge.own(loader)
        saved_symbol = prefs.get("price_symbol")
        self.symbol = pn.widgets.Select(
            options=symbols,
            value=saved_symbol if saved_symbol in symbols else (symbols[0] if symbols else None),
            width=120,
            height=32,
            css_classes=["sl-symbol"],
        )
        self.symbol.param.watch(self._on_symbol, "value")
        saved_window = prefs.get("chart_window_s", 0)
        self.window = pn.widgets.Select(
            options=CHART_WINDOWS,
            value=saved_window if saved_window in CHART_WINDOWS.values() else 0,
            width=140,
            height=32,
            css_classes=["sl-chart-window"],
        )
        self._apply_window(self.window.value)
        self.window.param.watch(self._on_window, "value")

    def queue_fill(self, event: TradeExecuted) -> None:
        """Engine thread: a fill to mark once the prices it belongs to are charted."""
        self._pending.append(event)

    def on_market(self, prices: Mapping[str, Any]) -> None:
        """The sampled ``prices`` view: chart the shown symbol's quote, then its fills up to
        that quote's time (one repaint per sample, not per fill)."""
        self.quote(prices)
        self.flush_marks(upto_ns=self.charted_ns)

    def quote(self, prices: Mapping[str, Any]) -> None:
        """Add the shown symbol's quote if it is newer than the last point (new symbols join
        the chooser)."""
        new = [sym for sym in prices if sym not in self.symbol.options]
        if new:
            self.symbol.options = [*self.symbol.options, *new]
            if self.symbol.value is None:
                self.symbol.value = new[0]
        quote = prices.get(self.symbol.value) if self.symbol.value else None
        if not quote or quote.get("last") is None:
            return
        ts = int(quote.get("ts") or 0)
        if ts <= self.charted_ns:
            return  # nothing new for the shown symbol
        if not self.charted_ns:
            self._start_ns = ts
        self.charted_ns = ts
        self.prices.stream(
            {"t": [pd.Timestamp(ts, unit="ns")], "price": [float(quote["last"])]},
            rollover=self._rollover,
        )

    def flush_marks(self, upto_ns: int | None = None) -> None:
        """Add the queued fills of the shown symbol. With ``upto_ns``, fills newer than the
        price line's last point wait for the next sample, so a marker never lies ahead of the
        prices it belongs to."""
        marks: list[TradeExecuted] = []
        pending = self._pending
        while pending:
            if upto_ns is not None and pending[0].ts_event > upto_ns:
                break
            event = pending.popleft()
            # a fill from before this chart's first price point (the session just opened)
            # has no prices to sit on: it is in the trades table, not on the chart
            if event.symbol == self.symbol.value and event.ts_event >= self._start_ns:
                marks.append(event)
        if not marks:
            return
        self.markers.stream(
            {
                "t": [pd.Timestamp(e.ts_event, unit="ns") for e in marks],
                "price": [e.price for e in marks],
                "color": ["#2ca02c" if e.side == "buy" else "#d62728" for e in marks],
                "side": [e.side for e in marks],
            },
            rollover=self._rollover,
        )

    def _load_history(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, list[Any]]:
        assert self._history is not None
        return self._history.price_history(
            symbol, start_ns, end_ns, points=self._config.chart_points
        )

    def _extend(self, answer: dict[str, list[Any]]) -> None:
        """A span of history, loaded off the loop, goes in front of the line; the chart then
        keeps up to that many more points (at most twice ``chart_points``)."""
        symbol = self.symbol.value

        def apply() -> None:
            if self.symbol.value != symbol or not self._start_ns:
                return  # the user switched symbols meanwhile
            held = prepend(self.prices, self.markers, answer)
            self._start_ns = int(answer["from"][0])
            self._rollover = min(max(self._rollover, held), 2 * self._config.chart_points)

        self._bridge.post(apply)

    def _on_symbol(self, event: param.parameterized.Event) -> None:
        self.charted_ns = self._start_ns = 0
        self._rollover = self._config.chart_points
        self.prices.data = {"t": [], "price": []}
        self.markers.data = no_markers()
        self._remember(price_symbol=event.new)

    def _on_window(self, event: param.parameterized.Event) -> None:
        self._apply_window(event.new)
        self._remember(chart_window_s=event.new)

    def _apply_window(self, seconds: int) -> None:
        """Show the last ``seconds`` of every followed chart (following new data), or all (0)."""
        for fig in self._figures:
            x_range = fig.x_range
            if isinstance(x_range, DataRange1d):  # what figure() makes for a datetime axis
                x_range.follow = "end" if seconds else None
                x_range.follow_interval = seconds * 1_000 if seconds else None
