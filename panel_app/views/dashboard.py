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
:class:`~panel_app.views.live_panes.LiveHTML` panes, which send only the new text; indicators
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

import panel as pn

from engine.config import DashboardConfig
from panel_app.aggregates import TradeAggregator
from panel_app.facade import EngineFacade
from panel_app.history import HistoryService
from panel_app.html_tables import TABLE_CSS
from panel_app.push import SessionBridge
from panel_app.push_support import once_per_event
from panel_app.recent_trades import RecentTrades
from panel_app.services import EngineStreams, build_streams
from panel_app.toasts import event_toast
from panel_app.views.charts import EquityChart, PriceChart
from panel_app.views.live_panes import (
    BADGE_CSS,
    INDICATOR_CSS,
    INDICATORS_HEIGHT,
    LAST_TRADE_HEIGHT,
    POSITIONS_HEIGHT,
    LiveHTML,
    StatusLine,
    badge,
    heading,
    indicator_values,
    indicators_html,
    position_rows,
    positions_html,
    runner_status_of,
)
from panel_app.views.tape import TradeTape
from streams import topics
from streams.events import (
    DataDropped,
    Event,
    Heartbeat,
    PositionClosed,
    RunnerStatusChanged,
    TradeExecuted,
    TradingStateChanged,
)


class DashboardView(pn.viewable.Viewer):
    """Live view of one engine for one session (display only; no writes to the engine)."""

    def __init__(
        self,
        kernel: EngineFacade,
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
        self.last_trade_id = ""
        self.trade_count = 0
        self._last_market_at = 0.0
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
        # a mirror has no notification service
        self.status = StatusLine(self.config, getattr(self.kernel, "notifications", None))
        self.status_pane = self.status.pane
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
        self.tape = TradeTape(
            self.recent,
            self._prefs.get("trade_columns", ()),
            on_columns=lambda columns: self._remember(trade_columns=columns),
        )
        self.trades = self.tape.pane
        self.equity = EquityChart(self.config.chart_points)
        self.chart = PriceChart(
            self.bridge,
            self.config,
            list(self._symbols()),
            self._prefs,
            self._remember,
            history=self._history,
            follow=(self.equity.figure,),
        )
        self.price_fig = self.chart.figure
        # One screen at 1440x900: the KPIs, then the price chart beside positions and the
        # recent trades, then equity and drawdown across the page.
        self._layout = pn.Column(
            self.indicators,
            pn.Row(
                pn.Column(
                    pn.Row(self.chart.symbol, self.chart.window, margin=0),
                    pn.Column(
                        pn.pane.Bokeh(self.price_fig, sizing_mode="stretch_width"),
                        sizing_mode="stretch_width",
                        margin=0,
                        css_classes=["sl-price-chart"],
                    ),
                    sizing_mode="stretch_width",
                    styles={"flex": "3 1 0"},
                ),
                pn.Column(
                    pn.pane.HTML(heading("Positions"), margin=(0, 10), height=28),
                    self.positions,
                    pn.Row(
                        pn.pane.HTML(heading("Recent trades"), margin=(0, 10), height=28),
                        self.last_trade_pane,
                        self.tape.settings,
                        margin=0,
                    ),
                    self.tape.chooser,
                    self.tape.view,
                    sizing_mode="stretch_width",
                    styles={"flex": "2 1 0"},
                ),
                sizing_mode="stretch_width",
            ),
            pn.Column(
                pn.pane.Bokeh(self.equity.figure, sizing_mode="stretch_width"),
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
        b.on_bus(bus, topics.ERRORS, self._toast)
        b.on_bus(bus, topics.COMMANDS, self._toast)
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
            self.status.problem = ""
        except Exception as exc:
            self.status.problem = f"state store not answering: {exc}"
            self.status.render()
            return
        self._show_pnl(state["pnl"])
        self._show_positions(state["positions"], state["prices"])
        self.chart.quote(state["prices"])  # the price line starts before any fill shown
        self.status.runner_status = runner_status_of(state.get("runner")) or str(
            getattr(self.kernel.runner, "status", "unknown")
        )
        self.status.trading = dict(state["trading"])
        feed = getattr(getattr(self.kernel, "runner", None), "feed", None)
        self.status.dropped = max(self.status.dropped, int(getattr(feed, "dropped", 0) or 0))
        self.equity.show_curve(self.aggregates.curve())
        self.status.render()

    # -- immediate tier (session loop) --------------------------------------------------------
    def _collect_trade(self, event: Event) -> None:
        """Engine thread: put a fill on the shared tape (once per engine), queue it for this
        session's badge, toasts and chart markers, and ask for one flush."""
        if not isinstance(event, TradeExecuted):
            return
        self.recent.add(event)
        self._pending_trades.append(event)
        self.chart.queue_fill(event)
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
            self._toast(e)

    def _toast(self, event: Event) -> None:
        toast = event_toast(event)
        if toast is not None:
            kind, message, duration = toast
            self.bridge.toast(kind, message, duration=duration)

    def _on_position_event(self, event: Event) -> None:
        self._refresh_positions()
        if isinstance(event, PositionClosed):
            self._toast(event)

    def _on_risk(self, event: Event) -> None:
        if isinstance(event, TradingStateChanged):
            self.status.trading = {
                "state": event.state,
                "reason": event.reason,
                "actor": event.actor,
            }
        self._toast(event)
        self.status.render()

    def _on_runner(self, event: Event) -> None:
        if isinstance(event, RunnerStatusChanged):
            self.status.runner_status = event.status
            self.status.render()
        self._toast(event)

    def _on_dropped(self, event: Event) -> None:
        if isinstance(event, DataDropped):
            self.status.dropped = max(self.status.dropped, event.total)
            self._toast(event)
            self.status.render()

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
        self.equity.add(pnl, as_of_ns)

    def _on_runner_view(self, runners: Mapping[str, Any]) -> None:
        status = runner_status_of(runners)
        if status:
            self.status.runner_status = status
            self.status.render()

    def _on_beat(self, event: Heartbeat) -> None:
        self.status.beat()
        self.status.render()

    def _on_beat_staleness(self, status: Any) -> None:
        self.status.stale = bool(status.stale)
        if not status.stale:
            self.status.beat()
        self.status.render()

    def _on_market(self, prices: Mapping[str, Any]) -> None:
        """Sampled ``prices`` view: every symbol's latest quote; the shown one is charted at
        its own (data) time."""
        self._last_market_at = time.monotonic()
        self._touch()
        self._refresh_positions()
        self.chart.on_market(prices)

    def _remember(self, **changes: Any) -> None:
        """UI preferences of this user: their own file, never the event log."""
        if self._save_prefs is not None:
            self._save_prefs(**changes)

    # -- periodic (session loop, 1 s): ages, staleness and engine health -----------------------
    def tick(self) -> None:
        """Re-check the engine and refresh ages; recovers by itself when the engine answers."""
        try:
            self.kernel.store.get_state("meta")
            if self.status.problem:
                self.refresh_snapshot()
        except Exception as exc:
            self.status.problem = f"engine not answering: {exc}"
        if time.monotonic() - self._last_market_at > 2 * self.config.market_sample_s:
            self.chart.flush_marks()  # fills of a symbol whose market data is not flowing
        self.status.render()

    # -- rendering helpers --------------------------------------------------------------------
    def _touch(self) -> None:
        self.status.data_arrived()

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
