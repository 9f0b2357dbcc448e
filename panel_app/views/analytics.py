"""The Analytics tab (lazy tier): trade history, P&L by symbol/day, drawdown, event browser,
time travel (:mod:`panel_app.views.time_travel`).

Nothing loads until the tab is opened or a button asks. Queries run on a worker thread (the
session's event loop stays free), their results come back through the session's bridge, and
each panel shows Panel's loading indicator meanwhile. Results are cached with a TTL in the
shared :class:`~panel_app.history.HistoryService`; P&L tables come from the pre-computed
:class:`~panel_app.aggregates.TradeAggregator`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from reactivex.subject import Subject

from panel_app.facade import EngineFacade
from panel_app.history import EVENT_COLUMNS, TRADE_COLUMNS, HistoryService
from panel_app.push import SessionBridge, loop_scheduler
from panel_app.services import EngineServices
from panel_app.toasts import notify
from panel_app.views.time_travel import TimeTravelView
from streams import topics
from streams.errors import EventError
from streams.events import event_types
from streams.operators import debounced

#: Quiet time after the last keystroke in the topic filter before the event log is searched.
FILTER_DEBOUNCE_S = 0.4


def _ns(value: Any) -> int | None:
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1e9)


def _grid(
    height: int, columns: list[str] | None = None, css_class: str | None = None
) -> pn.widgets.Tabulator:
    """A read-only, full-width table (``css_class`` lets the browser tests find it)."""
    return pn.widgets.Tabulator(
        pd.DataFrame(columns=columns),
        show_index=False,
        disabled=True,
        height=height,
        sizing_mode="stretch_width",
        css_classes=[css_class] if css_class else [],
    )


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
        kernel: EngineFacade | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.history: HistoryService = services.history
        self.aggregates = services.aggregates
        self.bridge = bridge
        self.page_size = page_size
        self.page = 0
        self.loaded = False
        self.trades = _grid(300, TRADE_COLUMNS, "sl-trade-history")
        self.page_label = pn.pane.Markdown("")
        prev_b = pn.widgets.Button(label="◀ Newer", width=90)
        next_b = pn.widgets.Button(label="Older ▶", width=90)
        prev_b.on_click(lambda _e: self.load_trades(max(0, self.page - 1)))
        next_b.on_click(lambda _e: self.load_trades(self.page + 1))
        self.by_symbol = _grid(200)
        self.by_day = _grid(200)
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
        self.events = _grid(320, EVENT_COLUMNS, "sl-event-browser")
        self.time_travel = TimeTravelView(self.history, bridge, kernel)
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
        self.time_travel.refresh_range(move=False)

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
