"""The Dashboard tab: indicators, positions, recent trades, charts, runner and staleness.

Built per session. All engine data arrives through the session's :class:`SessionBridge`:
immediate (fills, positions, risk, runner, errors), throttled (P&L, runner status) and
sampled (market data; the throttled streams are shared per engine, see
:mod:`panel_app.services`). Methods named ``_on_*`` run on the session's event loop only.

Cheap updates by construction, on the server and in the browser: the recent-trades and
positions tables are small HTML tables rendered once per change for all sessions (the
per-engine :class:`~panel_app.recent_trades.RecentTrades` tape, whose new fills reach the page
as a stream inserted row by row, :mod:`panel_app.views.tape`; positions once per state
version, :mod:`panel_app.views.live_panes`) and shown in
:class:`~panel_app.views.live_html.LiveHTML` panes, which send only the new text; indicators
and the status line are only assigned when their value changes; trade markers join the price
chart's sampled updates (one chart repaint per sample, not per fill); at most one toast per
drain.
Key elements carry ``data-testid`` attributes (inside Panel's shadow roots; Playwright
locators pierce them) so browser tests and the latency benchmark can find them.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, DataRange1d

from engine.config import DashboardConfig
from panel_app.aggregates import TradeAggregator
from panel_app.history import HistoryService
from panel_app.html_tables import TABLE_CSS
from panel_app.push import SessionBridge, loop_scheduler, once_per_event
from panel_app.recent_trades import TRADE_FIELDS, RecentTrades
from panel_app.services import EngineStreams, build_streams
from panel_app.views.chart_history import ChartHistory, in_thread, prepend
from panel_app.views.charts import equity_chart, price_chart
from panel_app.views.live_html import LiveHTML
from panel_app.views.live_panes import (
    BADGE_CSS,
    INDICATOR_CSS,
    INDICATORS_HEIGHT,
    LAST_TRADE_HEIGHT,
    POSITIONS_HEIGHT,
    badge,
    indicator_values,
    indicators_html,
    position_rows,
    positions_html,
    status_html,
)
from panel_app.views.tape import TradeTape
from streams import topics
from streams.events import (
    DailyLossBreached,
    DataDropped,
    ErrorRaised,
    Event,
    Heartbeat,
    PositionClosed,
    RunnerStatusChanged,
    TradeExecuted,
    TradingStateChanged,
)


def _heading(text: str) -> str:
    return (
        '<div style="font-size: 1.1em; font-weight: 600; margin: 4px 0; white-space: nowrap">'
        f"{text}</div>"
    )


#: Chart ranges a user can pick (seconds shown; 0 = everything kept).
CHART_WINDOWS = {"everything": 0, "last minute": 60, "last 5 minutes": 300, "last hour": 3_600}


class DashboardView(pn.viewable.Viewer):
    """Live view of one engine for one session (display only; no writes to the engine)."""

    def __init__(
        self,
        kernel: Any,
        bridge: SessionBridge,
        aggregates: TradeAggregator,
        config: DashboardConfig,
        streams: EngineStreams | None = None,
        recent: RecentTrades | None = None,
        history: HistoryService | None = None,
        prefs: Mapping[str, Any] | None = None,
        save_prefs: Callable[..., Any] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self._prefs = dict(prefs or {})
        self._save_prefs = save_prefs
        self.kernel = kernel
        self.bridge = bridge
        self.aggregates = aggregates
        self.config = config
        self.streams = (
            streams if streams is not None else build_streams(kernel.store, kernel.bus, config)
        )
        self.recent = recent if recent is not None else RecentTrades(config.recent_trades_rollover)
        # Filled on the engine thread, emptied on the session loop (deque ends are thread-safe).
        self._pending_trades: collections.deque[TradeExecuted] = collections.deque()
        self._pending_marks: collections.deque[TradeExecuted] = collections.deque()
        self._trading: dict[str, Any] = {"state": "active", "reason": "", "actor": ""}
        self._status_html = ""
        self.last_trade_id = ""
        self.trade_count = 0
        self._last_data_ns = time.time_ns()
        self._last_beat_ns = 0
        self._runner_status = ""
        self._problem = ""
        self._stale = False
        self._dropped = 0  # market data the live feed had to drop, as last reported
        self._last_market_at = 0.0
        self._charted_ns = 0  # data time of the newest point on the price chart
        self._chart_start_ns = 0  # and of its first
        self._rollover = config.chart_points  # points the price chart keeps (more with history)
        self._history = history
        self._build()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.indicators = LiveHTML(
            indicators_html(indicator_values({})),
            sizing_mode="stretch_width",
            height=INDICATORS_HEIGHT,
            css_classes=["sl-indicators-pane"],
            stylesheets=[INDICATOR_CSS],
        )
        self.status_pane = LiveHTML(
            "", sizing_mode="stretch_width", css_classes=["sl-status"], stylesheets=[BADGE_CSS]
        )
        # The live panes have fixed heights (their width follows the page): a pane whose box
        # changes size with its text wakes the layout's ResizeObservers on every update.
        self.last_trade_pane = LiveHTML(
            badge("last-trade", "no trades yet", kind="muted", fill=""),
            sizing_mode="stretch_width",
            height=LAST_TRADE_HEIGHT,
            css_classes=["sl-last-trade"],
            stylesheets=[BADGE_CSS],
        )
        self.positions = LiveHTML(
            positions_html([]),
            sizing_mode="stretch_width",
            height=POSITIONS_HEIGHT + 10,
            css_classes=["sl-positions"],
            stylesheets=[TABLE_CSS],
        )
        saved_columns = [c for c in self._prefs.get("trade_columns", ()) if c in TRADE_FIELDS]
        # The column chooser waits behind a settings toggle (a plain checkbox group: no
        # Choices.js, whose deprecation warnings filled the console).
        self.trade_columns = pn.widgets.CheckBoxGroup(
            name="Trade columns",
            options=list(TRADE_FIELDS),
            value=saved_columns or list(TRADE_FIELDS),
            inline=True,
            visible=False,
            css_classes=["sl-trade-columns"],
        )
        self.trade_settings = pn.widgets.Toggle(
            name="⚙",
            value=False,
            width=36,
            height=30,
            margin=(0, 0, 0, 8),
            css_classes=["sl-trade-settings"],
        )
        self.trade_settings.param.watch(
            lambda event: setattr(self.trade_columns, "visible", bool(event.new)), "value"
        )
        self.tape = TradeTape(self.recent, self.trade_columns.value)
        self.trades = self.tape.pane
        self.trade_columns.param.watch(self._on_trade_columns, "value")
        self.equity_source = ColumnDataSource(
            {"t": [], "equity": [], "drawdown": []}, name="equity-source"
        )
        equity_fig = equity_chart(self.equity_source)
        self.price_source = ColumnDataSource({"t": [], "price": []}, name="price-source")
        self.marker_source = ColumnDataSource(
            {"t": [], "price": [], "color": [], "side": []}, name="fill-markers"
        )
        price_fig = price_chart(self.price_source, self.marker_source)
        if self._history is not None:  # scrolling back before the first point loads history
            self.chart_history = ChartHistory(
                self._load_history,
                lambda: self._chart_start_ns,
                lambda: self.symbol.value,
                self._extend_chart,
                scheduler=loop_scheduler(self.bridge),
                run=in_thread,
            )
            self.chart_history.watch(price_fig)
            self.bridge.own(self.chart_history)
        self.price_fig = price_fig
        self.equity_fig = equity_fig
        symbols = list(self._symbols())
        saved_symbol = self._prefs.get("price_symbol")
        self.symbol = pn.widgets.Select(
            options=symbols,
            value=saved_symbol if saved_symbol in symbols else (symbols[0] if symbols else None),
            width=120,
            height=32,
            css_classes=["sl-symbol"],
        )
        self.symbol.param.watch(self._on_symbol, "value")
        saved_window = self._prefs.get("chart_window_s", 0)
        self.chart_window = pn.widgets.Select(
            options=CHART_WINDOWS,
            value=saved_window if saved_window in CHART_WINDOWS.values() else 0,
            width=140,
            height=32,
            css_classes=["sl-chart-window"],
        )
        self._apply_chart_window(self.chart_window.value)
        self.chart_window.param.watch(self._on_chart_window, "value")
        # One screen at 1440x900: the KPIs, then the price chart beside positions and the
        # recent trades, then equity and drawdown across the page.
        self._layout = pn.Column(
            self.indicators,
            pn.Row(
                pn.Column(
                    pn.Row(self.symbol, self.chart_window, margin=0),
                    pn.Column(
                        pn.pane.Bokeh(price_fig, sizing_mode="stretch_width"),
                        sizing_mode="stretch_width",
                        margin=0,
                        css_classes=["sl-price-chart"],
                    ),
                    sizing_mode="stretch_width",
                    styles={"flex": "3 1 0"},
                ),
                pn.Column(
                    pn.pane.HTML(_heading("Positions"), margin=(0, 10), height=28),
                    self.positions,
                    pn.Row(
                        pn.pane.HTML(_heading("Recent trades"), margin=(0, 10), height=28),
                        self.last_trade_pane,
                        self.trade_settings,
                        margin=0,
                    ),
                    self.trade_columns,
                    self.tape.view,
                    sizing_mode="stretch_width",
                    styles={"flex": "2 1 0"},
                ),
                sizing_mode="stretch_width",
            ),
            pn.Column(
                pn.pane.Bokeh(equity_fig, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
                margin=0,
                css_classes=["sl-equity-chart"],
            ),
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _symbols(self) -> list[str]:
        feed = getattr(getattr(self.kernel, "config", None), "feed", None)
        found = list(getattr(feed, "symbols", ()) or ())
        for sym in self.kernel.store.get_state("prices", {}):
            if sym not in found:
                found.append(sym)
        return found

    # -- wiring (session start) ---------------------------------------------------------------
    def connect(self) -> None:
        """Subscribe through the bridge, then show the current snapshot (no gap: subscribe
        first, read second; updates are idempotent)."""
        bus, b, streams = self.kernel.bus, self.bridge, self.streams
        # One drain per dispatch round: a fill and the position/P&L updates derived from it
        # in the same round reach the page in one message.
        b.follow_rounds(bus)
        # Immediate tier. Fills are formatted once per engine on the engine thread and
        # collected; one keyed flush per drain streams all of them at once.
        b.own(bus.subscribe(topics.ALL_FILLS, self._collect_trade, name=f"ui:{b.name}"))
        b.on_bus(bus, topics.ALL_POSITIONS, self._on_position_event, key="positions")
        b.on_bus(bus, topics.RISK, self._on_risk)
        b.on_bus(bus, topics.system("runner"), self._on_runner)
        b.on_bus(bus, topics.ERRORS, self._on_error)
        b.on_bus(bus, topics.COMMANDS, self._on_command)
        b.on_bus(bus, topics.ALL_DROPPED, self._on_dropped)
        # Throttled tier: streams shared by all sessions of the engine.
        # Throttled tier: the store's views (each session its own watchers) and heartbeats.
        b.on_rx(streams.pnl, self._on_pnl, key="pnl")
        b.on_rx(streams.runner, self._on_runner_view, key="runner")
        b.on_rx(streams.market, self._on_market, key="market")
        b.on_rx(streams.beat, self._on_beat, key="beat")
        b.on_rx(streams.beat_staleness, self._on_beat_staleness, key="stale")
        self.refresh_snapshot()

    # -- snapshot -----------------------------------------------------------------------------
    def refresh_snapshot(self) -> None:
        """Show the store's current state (session loop). On failure keep the old numbers and
        mark them stale with the reason."""
        try:
            state = self.kernel.store.get_state()
            self._problem = ""
        except Exception as exc:
            self._problem = f"state store not answering: {exc}"
            self._render_status()
            return
        self._show_pnl(state["pnl"])
        self._show_positions(state["positions"], state["prices"])
        self._chart_quote(state["prices"])  # the price line starts before any fill shown
        runners = state.get("runner") or {}
        runner = runners.get("runner") if isinstance(runners, Mapping) else None
        status = runner.get("status") if isinstance(runner, Mapping) else runner
        self._runner_status = str(status or getattr(self.kernel.runner, "status", "unknown"))
        self._trading = dict(state["trading"])
        feed = getattr(getattr(self.kernel, "runner", None), "feed", None)
        self._dropped = max(self._dropped, int(getattr(feed, "dropped", 0) or 0))
        curve = self.aggregates.curve()
        if curve:
            self.equity_source.data = {
                "t": [pd.Timestamp(ts, unit="ns") for ts, _, _ in curve],
                "equity": [e for _, e, _ in curve],
                "drawdown": [d for _, _, d in curve],
            }
        self._render_status()

    # -- immediate tier (session loop) --------------------------------------------------------
    def _collect_trade(self, event: Event) -> None:
        """Engine thread: put a fill on the shared tape (once per engine), queue it for this
        session's badge, toasts and chart markers, and ask for one flush."""
        if not isinstance(event, TradeExecuted):
            return
        self.recent.add(event)
        self._pending_trades.append(event)
        self._pending_marks.append(event)
        self.bridge.post(self._flush_trades, key="trades")

    def _flush_trades(self) -> None:
        """Session loop: every fill queued since the last drain, shown at once."""
        batch: list[TradeExecuted] = []
        while self._pending_trades:
            batch.append(self._pending_trades.popleft())
        if not batch:
            return
        self.trade_count += len(batch)
        event = batch[-1]
        self.last_trade_id = event.fill_id
        self._touch()
        self.tape.add(batch)
        text = f"{event.side.upper()} {event.qty:g} {event.symbol} @ {event.price:,.2f}"
        self.last_trade_pane.object = badge(
            "last-trade", text, kind=event.side, fill=event.fill_id, count=str(self.trade_count)
        )
        for e in batch:
            text = f"{e.side.upper()} {e.qty:g} {e.symbol} @ {e.price:,.2f}"
            self.bridge.toast("info", f"Trade {text} ({e.strategy})")

    def _flush_marks(self, upto_ns: int | None = None) -> None:
        """Session loop: add the queued fills of the shown symbol to the price chart (with the
        sampled market tier, so the chart repaints once per sample, not once per fill). With
        ``upto_ns``, fills newer than the price line's last point wait for the next sample, so
        a marker never lies ahead of the prices it belongs to."""
        marks: list[TradeExecuted] = []
        pending = self._pending_marks
        while pending:
            if upto_ns is not None and pending[0].ts_event > upto_ns:
                break
            event = pending.popleft()
            # a fill from before this chart's first price point (the session just opened)
            # has no prices to sit on: it is in the trades table, not on the chart
            if event.symbol == self.symbol.value and event.ts_event >= self._chart_start_ns:
                marks.append(event)
        if not marks:
            return
        self.marker_source.stream(
            {
                "t": [pd.Timestamp(e.ts_event, unit="ns") for e in marks],
                "price": [e.price for e in marks],
                "color": ["#2ca02c" if e.side == "buy" else "#d62728" for e in marks],
                "side": [e.side for e in marks],
            },
            rollover=self._rollover,
        )

    def _on_position_event(self, event: Event) -> None:
        self._refresh_positions()
        if isinstance(event, PositionClosed):
            self.bridge.toast(
                "success", f"Position {event.symbol} closed, realized {event.realized_pnl:,.2f}"
            )

    def _on_risk(self, event: Event) -> None:
        if isinstance(event, DailyLossBreached):
            self.bridge.toast(
                "error",
                f"Daily loss limit breached: P&L {event.daily_pnl:,.2f} < -{event.limit:,.2f}; "
                f"action: {event.action}",
                duration=0,
            )
        elif isinstance(event, TradingStateChanged):
            self._trading = {"state": event.state, "reason": event.reason, "actor": event.actor}
            kind = "warning" if event.state != "active" else "success"
            self.bridge.toast(kind, f"Trading {event.state}: {event.reason or event.actor}")
        self._render_status()

    def _on_runner(self, event: Event) -> None:
        if isinstance(event, RunnerStatusChanged):
            self._runner_status = event.status
            self._render_status()
            self.bridge.toast("info", f"Runner {event.previous} -> {event.status} ({event.reason})")
        elif isinstance(event, ErrorRaised):
            self._on_error(event)

    def _on_error(self, event: Event) -> None:
        if isinstance(event, ErrorRaised):
            self.bridge.toast(
                "error", f"Error in {event.component}: {event.message}", duration=10_000
            )

    def _on_dropped(self, event: Event) -> None:
        if isinstance(event, DataDropped):
            self._dropped = max(self._dropped, event.total)
            self.bridge.toast(
                "warning",
                f"Market data dropped: {event.count:,} events from {event.source} "
                f"({event.total:,} in all); the engine fell behind the feed",
                duration=10_000,
            )
            self._render_status()

    def _on_command(self, event: Event) -> None:
        if getattr(event, "type", "") == "command_refused":
            command = getattr(event, "command", "?")
            actor = getattr(event, "actor", "?")
            reason = getattr(event, "reason", "")
            self.bridge.toast("warning", f"Command {command!r} by {actor} refused: {reason}")

    # -- throttled tier (session loop) --------------------------------------------------------
    def _on_pnl(self, value: tuple[Mapping[str, Any], int]) -> None:
        pnl, as_of_ns = value
        self._touch()
        self._set_indicators(
            once_per_event(
                pnl,
                "indicators-html",
                lambda: indicators_html(indicator_values(pnl)),
            )
        )
        if not pnl:
            return
        self.equity_source.stream(
            {
                "t": [pd.Timestamp(as_of_ns, unit="ns")],
                "equity": [float(pnl["equity"])],
                "drawdown": [float(pnl["drawdown"])],
            },
            rollover=self.config.chart_points,
        )

    def _on_runner_view(self, runners: Mapping[str, Any]) -> None:
        runner = runners.get("runner") if isinstance(runners, Mapping) else None
        status = runner.get("status") if isinstance(runner, Mapping) else runner
        if status:
            self._runner_status = str(status)
            self._render_status()

    def _on_beat(self, event: Heartbeat) -> None:
        self._last_beat_ns = time.time_ns()
        self._render_status()

    def _on_beat_staleness(self, status: Any) -> None:
        self._stale = bool(status.stale)
        if not status.stale:
            self._last_beat_ns = time.time_ns()
        self._render_status()

    def _on_market(self, prices: Mapping[str, Any]) -> None:
        """Sampled ``prices`` view: every symbol's latest quote; the shown one is charted at
        its own (data) time."""
        self._last_market_at = time.monotonic()
        self._touch()
        self._refresh_positions()
        self._chart_quote(prices)
        self._flush_marks(upto_ns=self._charted_ns)

    def _chart_quote(self, prices: Mapping[str, Any]) -> None:
        """Add the shown symbol's quote to the price chart if it is newer than its last point
        (new symbols join the chooser)."""
        new = [sym for sym in prices if sym not in self.symbol.options]
        if new:
            self.symbol.options = [*self.symbol.options, *new]
            if self.symbol.value is None:
                self.symbol.value = new[0]
        quote = prices.get(self.symbol.value) if self.symbol.value else None
        if not quote or quote.get("last") is None:
            return
        ts = int(quote.get("ts") or 0)
        if ts <= self._charted_ns:
            return  # nothing new for the shown symbol
        if not self._charted_ns:
            self._chart_start_ns = ts
        self._charted_ns = ts
        self.price_source.stream(
            {"t": [pd.Timestamp(ts, unit="ns")], "price": [float(quote["last"])]},
            rollover=self._rollover,
        )

    def _load_history(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, list[Any]]:
        assert self._history is not None
        return self._history.price_history(
            symbol, start_ns, end_ns, points=self.config.chart_points
        )

    def _extend_chart(self, answer: dict[str, list[Any]]) -> None:
        """A span of history, loaded off the loop, goes in front of the price chart; the chart
        then keeps up to that many more points (at most twice ``chart_points``)."""
        symbol = self.symbol.value

        def apply() -> None:
            if self.symbol.value != symbol or not self._chart_start_ns:
                return  # the user switched symbols meanwhile
            held = prepend(self.price_source, self.marker_source, answer)
            self._chart_start_ns = int(answer["from"][0])
            self._rollover = min(max(self._rollover, held), 2 * self.config.chart_points)

        self.bridge.post(apply)

    def _on_symbol(self, event: param.parameterized.Event) -> None:
        self._charted_ns = self._chart_start_ns = 0
        self._rollover = self.config.chart_points
        self.price_source.data = {"t": [], "price": []}
        self.marker_source.data = {"t": [], "price": [], "color": [], "side": []}
        self._remember(price_symbol=event.new)

    def _on_trade_columns(self, event: param.parameterized.Event) -> None:
        self.tape.show_columns(event.new)
        self._remember(trade_columns=list(event.new))

    def _on_chart_window(self, event: param.parameterized.Event) -> None:
        self._apply_chart_window(event.new)
        self._remember(chart_window_s=event.new)

    def _apply_chart_window(self, seconds: int) -> None:
        """Show the last ``seconds`` of both charts (following new data), or everything (0)."""
        for fig in (self.equity_fig, self.price_fig):
            x_range = fig.x_range
            if isinstance(x_range, DataRange1d):  # what figure() makes for a datetime axis
                x_range.follow = "end" if seconds else None
                x_range.follow_interval = seconds * 1_000 if seconds else None

    def _remember(self, **changes: Any) -> None:
        """UI preferences of this user: their own file, never the event log."""
        if self._save_prefs is not None:
            self._save_prefs(**changes)

    # -- periodic (session loop, 1 s): ages, staleness and engine health -----------------------
    def tick(self) -> None:
        """Re-check the engine and refresh ages; recovers by itself when the engine answers."""
        try:
            self.kernel.store.get_state("meta")
            if self._problem:
                self.refresh_snapshot()
        except Exception as exc:
            self._problem = f"engine not answering: {exc}"
        if time.monotonic() - self._last_market_at > 2 * self.config.market_sample_s:
            self._flush_marks()  # fills of a symbol whose market data is not flowing
        self._render_status()

    # -- rendering helpers --------------------------------------------------------------------
    def _touch(self) -> None:
        self._last_data_ns = time.time_ns()

    def _show_pnl(self, pnl: Any) -> None:
        self._set_indicators(indicators_html(indicator_values(pnl)))

    def _set_indicators(self, text: str) -> None:
        if self.indicators.object != text:
            self.indicators.object = text

    def _refresh_positions(self) -> None:
        """Session loop: show the store's positions (HTML built once per state version)."""
        state = self.kernel.store.get_state()
        self._set_positions(
            once_per_event(
                state,
                "positions-html",
                lambda: positions_html(position_rows(state["positions"], state["prices"])),
            )
        )

    def _show_positions(self, positions: Any, prices: Any) -> None:
        self._set_positions(positions_html(position_rows(positions, prices)))

    def _set_positions(self, text: str) -> None:
        if self.positions.object != text:
            self.positions.object = text

    def _render_status(self) -> None:
        now = time.time_ns()
        beat_age = (now - self._last_beat_ns) / 1e9 if self._last_beat_ns else None
        reasons = []
        if self._problem:
            reasons.append(self._problem)
        if self._stale or (beat_age is not None and beat_age > self.config.stale_after_s):
            reasons.append(f"no heartbeat for {beat_age or 0:.0f} s")
        notifications = getattr(self.kernel, "notifications", None)  # a mirror has none
        text = status_html(
            runner_status=self._runner_status,
            trading=self._trading,
            beat_age=beat_age,
            data_age=(now - self._last_data_ns) / 1e9,
            reasons=reasons,
            dropped=self._dropped,
            notify=notifications.alerts() if notifications is not None else None,
        )
        if text != self._status_html:
            self._status_html = text
            self.status_pane.object = text


def notify(kind: str, message: str, duration: int = 4_000) -> None:
    """A toast in the current session (no-op outside a served session)."""
    area = pn.state.notifications
    if area is None:
        return
    getattr(area, kind)(message, duration=duration)
