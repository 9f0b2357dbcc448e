"""The Analytics tab (lazy tier): trade history, P&L by symbol/day, drawdown, event browser,
time travel.

Nothing loads until the tab is opened or a button asks. Queries run on a worker thread (the
session's event loop stays free), their results come back through the session's bridge, and
each panel shows Panel's loading indicator meanwhile. Results are cached with a TTL in the
shared :class:`~panel_app.history.HistoryService`; P&L tables come from the pre-computed
:class:`~panel_app.aggregates.TradeAggregator`.

Time travel: a seq slider (and a seq box) shows positions, cash, P&L and open orders as of that
event, with the event's time and type. Slider values go through ``debounced`` (a drag starts
one restore when it pauses, at most one per ``TIME_TRAVEL_MAX_WAIT_S`` while it goes on), the
restore (``Kernel.state_at``: newest snapshot at or before the seq + the events after it) runs
on a worker thread, one at a time per session and per engine, with the newest request winning,
and its result comes back through the session's bridge.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from reactivex.subject import Subject

from panel_app.history import EVENT_COLUMNS, TRADE_COLUMNS, HistoryService, fmt_ns
from panel_app.html_tables import TABLE_CSS, Column, html_table, money, quantity
from panel_app.push import SessionBridge, loop_scheduler
from panel_app.services import EngineServices
from panel_app.views.dashboard import notify
from streams import topics
from streams.errors import EventError
from streams.events import event_types
from streams.operators import debounced

#: Quiet time after the last slider move before a restore starts, and the longest a drag
#: waits for one.
TIME_TRAVEL_DEBOUNCE_S = 0.25
#: Quiet time after the last keystroke in the topic filter before the event log is searched.
FILTER_DEBOUNCE_S = 0.4
TIME_TRAVEL_MAX_WAIT_S = 1.0

StateAt = Callable[[int], dict[str, Any]]

TT_POSITION_COLUMNS = (
    Column("symbol", "Symbol"),
    Column("qty", "Qty", quantity, numeric=True),
    Column("avg_price", "Avg price", money, numeric=True),
    Column("last", "Last", money, numeric=True),
    Column("realized_pnl", "Realized", money, numeric=True),
)
TT_ORDER_COLUMNS = (
    Column("order_id", "Order"),
    Column("strategy", "Strategy"),
    Column("symbol", "Symbol"),
    Column("side", "Side"),
    Column("order_type", "Type"),
    Column("qty", "Qty", quantity, numeric=True),
    Column("filled_qty", "Filled", quantity, numeric=True),
    Column("limit_price", "Limit", money, numeric=True),
    Column("status", "Status"),
)
TT_SUMMARY_COLUMNS = (
    Column("cash", "Cash", money, numeric=True),
    Column("equity", "Equity", money, numeric=True),
    Column("realized", "Realized", money, numeric=True),
    Column("unrealized", "Unrealized", money, numeric=True),
    Column("daily", "Daily", money, numeric=True),
    Column("max_drawdown", "Max drawdown", money, numeric=True),
    Column("commissions", "Commissions", money, numeric=True),
    Column("trading", "Trading"),
)


def _ns(value: Any) -> int | None:
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1e9)


def time_travel_rows(result: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The rows the time-travel tables show for one ``Kernel.state_at`` result."""
    state = result["state"]
    prices = state.get("prices", {})
    positions = [
        {**pos, "symbol": symbol, "last": (prices.get(symbol) or {}).get("last")}
        for symbol, pos in sorted(state.get("positions", {}).items())
        if float(pos.get("qty") or 0.0) != 0.0 or float(pos.get("realized_pnl") or 0.0) != 0.0
    ]
    orders = sorted(state.get("orders", {}).values(), key=lambda o: (o.get("ts", 0), o["order_id"]))
    account, pnl = state.get("account", {}), state.get("pnl", {})
    summary = {
        "key": "summary",
        "cash": account.get("cash"),
        "commissions": account.get("commissions"),
        **{k: pnl.get(k) for k in ("equity", "realized", "unrealized", "daily", "max_drawdown")},
        "trading": (state.get("trading") or {}).get("state", ""),
    }
    return {"positions": positions, "orders": list(orders), "summary": [summary]}


class AnalyticsView(pn.viewable.Viewer):
    """History and aggregates for one session, loaded on demand.

    ``kernel``: the engine (its ``state_at`` and ``store.last_seq`` drive time travel); without
    one, the tab says time travel is not available.
    """

    def __init__(
        self,
        services: EngineServices,
        bridge: SessionBridge,
        page_size: int,
        *,
        kernel: Any = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.history: HistoryService = services.history
        self.aggregates = services.aggregates
        self.bridge = bridge
        self.page_size = page_size
        self.page = 0
        self.loaded = False
        self.trades = pn.widgets.Tabulator(
            pd.DataFrame(columns=TRADE_COLUMNS),
            show_index=False,
            disabled=True,
            height=300,
            sizing_mode="stretch_width",
            css_classes=["sl-trade-history"],
        )
        self.page_label = pn.pane.Markdown("")
        prev_b = pn.widgets.Button(label="◀ Newer", width=90)
        next_b = pn.widgets.Button(label="Older ▶", width=90)
        prev_b.on_click(lambda _e: self.load_trades(max(0, self.page - 1)))
        next_b.on_click(lambda _e: self.load_trades(self.page + 1))
        self.by_symbol = pn.widgets.Tabulator(
            pd.DataFrame(),
            show_index=False,
            disabled=True,
            height=200,
            sizing_mode="stretch_width",
        )
        self.by_day = pn.widgets.Tabulator(
            pd.DataFrame(),
            show_index=False,
            disabled=True,
            height=200,
            sizing_mode="stretch_width",
        )
        self.dd_source = ColumnDataSource({"t": [], "drawdown": []})
        dd_fig = figure(
            height=220,
            x_axis_type="datetime",
            title="Drawdown",
            sizing_mode="stretch_width",
            tools="pan,wheel_zoom,reset",
        )
        dd_fig.varea("t", 0, "drawdown", source=self.dd_source, fill_alpha=0.4, color="#d62728")
        self.dd_pane = pn.pane.Bokeh(dd_fig, sizing_mode="stretch_width")
        refresh = pn.widgets.Button(label="Refresh aggregates", width=160)
        refresh.on_click(lambda _e: self.load_aggregates())
        # Event-log browser: every filter is a widget value passed as a bound parameter.
        self.topic = pn.widgets.TextInput(label="Topic pattern", placeholder="fills.* or data.>")
        self.types = pn.widgets.MultiChoice(label="Types", options=sorted(event_types()))
        self.start = pn.widgets.DatetimePicker(label="From (UTC)")
        self.end = pn.widgets.DatetimePicker(label="To (UTC)")
        self.since = pn.widgets.IntInput(label="After seq", value=0, start=0, width=120)
        search = pn.widgets.Button(label="Search", color="primary", width=100)
        more = pn.widgets.Button(label="Next page", width=100)
        search.on_click(lambda _e: self.load_events(reset=True))
        more.on_click(lambda _e: self.load_events(reset=False))
        # Search as the user types, once typing stops; a pattern still being typed ("fills.")
        # is not searched (the Search button reports it).
        typed: Subject[str] = Subject()
        quiet = typed.pipe(debounced(FILTER_DEBOUNCE_S, loop_scheduler(self.bridge)))
        self.bridge.own(quiet.subscribe(on_next=self._search_typed))
        self.topic.param.watch(lambda event: typed.on_next(event.new or ""), "value_input")
        #: Searches started by typing (for tests).
        self.typed_searches = 0
        self.events = pn.widgets.Tabulator(
            pd.DataFrame(columns=EVENT_COLUMNS),
            show_index=False,
            disabled=True,
            height=320,
            sizing_mode="stretch_width",
            css_classes=["sl-event-browser"],
        )
        self._build_time_travel(kernel)
        self._layout = pn.Column(
            pn.pane.Markdown("### Trade history"),
            pn.Row(prev_b, next_b, self.page_label),
            self.trades,
            pn.Row(pn.pane.Markdown("### P&L"), refresh),
            pn.Row(
                pn.Column("By symbol", self.by_symbol, sizing_mode="stretch_width"),
                pn.Column("By day", self.by_day, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            self.dd_pane,
            pn.pane.Markdown("### Event log"),
            pn.Row(self.topic, self.types, self.start, self.end, self.since, search, more),
            self.events,
            pn.pane.Markdown("### Time travel"),
            self.time_travel,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def activate(self) -> None:
        """Load everything the first time the tab is shown."""
        if self.loaded:
            return
        self.loaded = True
        self.load_trades(0)
        self.load_aggregates()
        self.refresh_time_range(move=False)

    # -- loading (session loop starts, worker runs, bridge finishes) ---------------------------
    def _background(
        self, target: Any, compute: Callable[[], Any], done: Callable[[Any], None]
    ) -> None:
        target.loading = True

        def work() -> None:
            try:
                result = compute()
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"

                def failed() -> None:
                    target.loading = False
                    notify("error", f"Query failed: {message}")

                self.bridge.post(failed)
                return

            def finish() -> None:
                target.loading = False
                done(result)

            self.bridge.post(finish)

        threading.Thread(target=work, name="analytics-query", daemon=True).start()

    def load_trades(self, page: int) -> None:
        """Load page ``page`` (0 = newest) of the trade history."""
        total = self.aggregates.trade_count()
        pages = max(1, -(-total // self.page_size))
        page = min(page, pages - 1)

        def done(df: pd.DataFrame) -> None:
            self.page = page
            self.trades.value = df
            self.page_label.object = f"page {page + 1} of {pages} ({total} trades)"

        self._background(self.trades, lambda: self.history.trade_page(page, self.page_size), done)

    def load_aggregates(self) -> None:
        """Show the pre-computed P&L tables and drawdown curve (cheap: copies, no queries)."""
        self.by_symbol.value = pd.DataFrame(self.aggregates.by_symbol())
        self.by_day.value = pd.DataFrame(self.aggregates.by_day())
        curve = self.aggregates.curve()
        self.dd_source.data = {
            "t": [pd.Timestamp(ts, unit="ns") for ts, _, _ in curve],
            "drawdown": [-abs(d) for _, _, d in curve],
        }

    def _search_typed(self, pattern: str) -> None:
        try:
            if pattern.strip():
                topics.validate_pattern(pattern.strip())
        except EventError:
            return
        self.typed_searches += 1
        self.bridge.post(lambda: self._search_pattern(pattern))

    def _search_pattern(self, pattern: str) -> None:
        self.topic.value = pattern
        self.load_events(reset=True)

    def load_events(self, *, reset: bool) -> None:
        """Run the event-log search; ``reset=False`` fetches the page after the last row."""
        if not reset and len(self.events.value):
            self.since.value = int(self.events.value["seq"].iloc[-1])
        args: dict[str, Any] = {
            "topic": (self.topic.value or "").strip() or None,
            "types": tuple(self.types.value),
            "start_ns": _ns(self.start.value),
            "end_ns": _ns(self.end.value),
            "since_seq": int(self.since.value or 0),
            "limit": self.page_size,
        }

        def done(df: pd.DataFrame) -> None:
            self.events.value = df

        self._background(self.events, lambda: self.history.events(**args), done)

    # -- time travel (session loop: slider -> debounce -> worker -> bridge -> tables) ----------
    def _build_time_travel(self, kernel: Any) -> None:
        self._kernel = kernel
        state_at = getattr(kernel, "state_at", None)
        self._state_at: StateAt | None = state_at if callable(state_at) else None
        #: Restores this session started (each one a ``Kernel.state_at`` or a cache hit).
        self.tt_requests = 0
        #: The newest ``state_at`` result shown.
        self.tt_result: dict[str, Any] | None = None
        self.tt_slider = pn.widgets.IntSlider(
            label="As of seq",
            start=0,
            end=1,
            value=0,
            sizing_mode="stretch_width",
            css_classes=["sl-tt-slider"],
        )
        self.tt_seq = pn.widgets.IntInput(
            label="Seq", value=0, start=0, width=140, css_classes=["sl-tt-seq"]
        )
        latest = pn.widgets.Button(label="Latest", width=90)
        latest.on_click(lambda _e: self.refresh_time_range(move=True))
        self.tt_readout = pn.pane.HTML(
            self._readout("Pick an event with the slider or the seq box."),
            sizing_mode="stretch_width",
        )
        css = [TABLE_CSS]
        self.tt_summary = pn.pane.HTML(self._table("summary", []), stylesheets=css)
        self.tt_positions = pn.pane.HTML(self._table("positions", []), stylesheets=css)
        self.tt_orders = pn.pane.HTML(self._table("orders", []), stylesheets=css)
        self.time_travel = pn.Column(
            pn.Row(self.tt_slider, self.tt_seq, latest, sizing_mode="stretch_width"),
            self.tt_readout,
            self.tt_summary,
            pn.Row(
                pn.Column("Positions", self.tt_positions, sizing_mode="stretch_width"),
                pn.Column("Open orders", self.tt_orders, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
            css_classes=["sl-time-travel"],
        )
        self._tt_syncing = False
        self._tt_lock = threading.Lock()
        self._tt_wanted: int | None = None
        self._tt_running = False
        if self._state_at is None:
            self.tt_slider.disabled = self.tt_seq.disabled = latest.disabled = True
            self.tt_readout.object = self._readout("Time travel is not available for this engine.")
            return
        # Subject.on_next is called from the session loop only (never from two threads).
        self._tt_subject: Subject[int] = Subject()
        pause = debounced(
            TIME_TRAVEL_DEBOUNCE_S, loop_scheduler(self.bridge), max_wait=TIME_TRAVEL_MAX_WAIT_S
        )
        self.bridge.own(self._tt_subject.pipe(pause).subscribe(on_next=self._tt_request))
        self.tt_slider.param.watch(self._on_tt_value, "value")
        self.tt_seq.param.watch(self._on_tt_value, "value")

    def refresh_time_range(self, *, move: bool) -> None:
        """Session loop: stretch the slider to the engine's last seq; with ``move``, go there
        (and restore it); without, a new slider starts at the end and restores nothing."""
        if self._state_at is None:
            return
        last = int(getattr(getattr(self._kernel, "store", None), "last_seq", 0) or 0)
        self._tt_syncing = True
        try:
            self.tt_slider.end = max(last, 1)
            self.tt_seq.end = max(last, 1)
            if self.tt_result is None and not move:
                self.tt_slider.value = self.tt_seq.value = last
        finally:
            self._tt_syncing = False
        if move:
            if self.tt_slider.value == last:
                self._tt_subject.on_next(last)  # already there: ask again (the log moved on)
                self._tt_show_loading()
            else:
                self.tt_slider.value = last

    def _on_tt_value(self, event: Any) -> None:
        """Session loop: a slider or seq-box change; mirror it and hand it to the debounce."""
        if self._tt_syncing or event.new is None:
            return
        seq = max(0, min(int(event.new), int(self.tt_slider.end)))
        self._tt_syncing = True
        try:
            self.tt_slider.value = seq
            self.tt_seq.value = seq
        finally:
            self._tt_syncing = False
        self._tt_show_loading()
        self._tt_subject.on_next(seq)

    def _tt_show_loading(self) -> None:
        for pane in (self.tt_summary, self.tt_positions, self.tt_orders):
            pane.loading = True

    def _tt_request(self, seq: int) -> None:
        """Debounce timer (the session loop when served): restore ``seq`` on the worker thread
        (one per session at a time; the newest request wins)."""
        with self._tt_lock:
            self._tt_wanted = seq
            if self._tt_running:
                return
            self._tt_running = True
        threading.Thread(target=self._tt_work, name="analytics-time-travel", daemon=True).start()

    def _tt_work(self) -> None:
        """Worker thread: restore the newest wanted seq until none is left."""
        assert self._state_at is not None
        while True:
            with self._tt_lock:
                seq, self._tt_wanted = self._tt_wanted, None
                if seq is None or self.bridge.closed:
                    self._tt_running = False
                    return
            self.tt_requests += 1
            start = time.perf_counter()
            try:
                result = self.history.state_at(seq, self._state_at)
            except Exception as exc:
                message = f"Time travel to seq {seq} failed: {type(exc).__name__}: {exc}"
                self.bridge.post(functools.partial(self._tt_failed, message), key="time-travel")
                self.bridge.toast("error", message)
                continue
            took_s = time.perf_counter() - start
            show = functools.partial(self._tt_show, result, seq, took_s)
            self.bridge.post(show, key="time-travel")

    def _tt_failed(self, message: str) -> None:
        for pane in (self.tt_summary, self.tt_positions, self.tt_orders):
            pane.loading = False
        self.tt_readout.object = self._readout(message)

    def _tt_show(self, result: dict[str, Any], requested: int, took_s: float) -> None:
        """Session loop: show one restored state (the newest finished restore)."""
        self.tt_result = result
        rows = time_travel_rows(result)
        self.tt_summary.object = self._table("summary", rows["summary"])
        self.tt_positions.object = self._table("positions", rows["positions"])
        self.tt_orders.object = self._table("orders", rows["orders"])
        seq = int(result["seq"])
        when = fmt_ns(int(result["ts"])) or "-"
        where = (
            f"snapshot at seq {int(result['snapshot_seq']):,} + {int(result['replayed']):,} "
            f"events replayed"
            if result["snapshot_seq"]
            else f"{int(result['replayed']):,} events replayed from the start"
        )
        self.tt_readout.object = self._readout(
            f"As of seq <b>{seq:,}</b> of {int(self.tt_slider.end):,} &middot; {when} UTC "
            f"&middot; {html.escape(str(result.get('type') or '-'))} &middot; {where} "
            f"&middot; {took_s * 1e3:,.0f} ms",
            seq=seq,
        )
        # Still loading while the slider has moved on to a seq not restored yet.
        loading = requested != self.tt_slider.value
        for pane in (self.tt_summary, self.tt_positions, self.tt_orders):
            pane.loading = loading

    @staticmethod
    def _readout(message: str, seq: int | None = None) -> str:
        at = f' data-seq="{seq}"' if seq is not None else ""
        return f'<div data-testid="tt-readout"{at}>{message}</div>'

    @staticmethod
    def _table(kind: str, rows: list[dict[str, Any]]) -> str:
        if kind == "summary":
            return html_table("tt-summary", TT_SUMMARY_COLUMNS, rows, key="key", empty="-")
        if kind == "positions":
            return html_table(
                "tt-positions", TT_POSITION_COLUMNS, rows, key="symbol", empty="no positions"
            )
        return html_table("tt-orders", TT_ORDER_COLUMNS, rows, key="order_id", empty="none open")
