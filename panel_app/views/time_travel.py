"""Time travel, part of the Analytics tab: positions, cash, P&L and open orders as of one event.

A seq slider (and a seq box) picks the event; the tables show the state as of it, with the
event's time and type. Slider values go through ``debounced`` (a drag starts one restore when
it pauses, at most one per ``TIME_TRAVEL_MAX_WAIT_S`` while it goes on), the restore
(``Kernel.state_at``: newest snapshot at or before the seq + the events after it) runs on a
worker thread, one at a time per session and per engine, with the newest request winning,
and its result comes back through the session's bridge.
"""

from __future__ import annotations

import functools
import html
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import panel as pn
from reactivex.subject import Subject

from panel_app.facade import EngineFacade
from panel_app.history import HistoryService, fmt_ns
from panel_app.html_tables import TABLE_CSS, Column, html_table, money, quantity
from panel_app.push import SessionBridge, loop_scheduler
from streams.operators import debounced

#: Quiet time after the last slider move before a restore starts, and the longest a drag
#: waits for one.
TIME_TRAVEL_DEBOUNCE_S = 0.25
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

#: Each time-travel table: its test id, columns, row key and what it shows when empty.
_TABLES = {
    "summary": ("tt-summary", TT_SUMMARY_COLUMNS, "key", "-"),
    "positions": ("tt-positions", TT_POSITION_COLUMNS, "symbol", "no positions"),
    "orders": ("tt-orders", TT_ORDER_COLUMNS, "order_id", "none open"),
}


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


def _readout(message: str, seq: int | None = None) -> str:
    at = f' data-seq="{seq}"' if seq is not None else ""
    return f'<div data-testid="tt-readout"{at}>{message}</div>'


def _table(kind: str, rows: list[dict[str, Any]]) -> str:
    testid, columns, key, empty = _TABLES[kind]
    return html_table(testid, columns, rows, key=key, empty=empty)


class TimeTravelView(pn.viewable.Viewer):
    """The state as of a chosen seq, for one session (session loop: slider -> debounce ->
    worker -> bridge -> tables).

    ``kernel``: the engine (its ``state_at`` and ``store.last_seq`` drive time travel);
    without one, the view says time travel is not available.
    """

    def __init__(
        self, history: HistoryService, bridge: SessionBridge, kernel: EngineFacade | None
    ) -> None:
        super().__init__()
        self.history = history
        self.bridge = bridge
        self._kernel = kernel
        state_at = getattr(kernel, "state_at", None)
        self._state_at: StateAt | None = state_at if callable(state_at) else None
        #: Restores this session started (each one a ``Kernel.state_at`` or a cache hit).
        self.requests = 0
        #: The newest ``state_at`` result shown.
        self.result: dict[str, Any] | None = None
        self.slider = pn.widgets.IntSlider(
            label="As of seq",
            start=0,
            end=1,
            value=0,
            sizing_mode="stretch_width",
            css_classes=["sl-tt-slider"],
        )
        self.seq_input = pn.widgets.IntInput(
            label="Seq", value=0, start=0, width=140, css_classes=["sl-tt-seq"]
        )
        latest = pn.widgets.Button(label="Latest", width=90)
        latest.on_click(lambda _e: self.refresh_range(move=True))
        self.readout = pn.pane.HTML(
            _readout("Pick an event with the slider or the seq box."),
            sizing_mode="stretch_width",
        )
        css = [TABLE_CSS]
        self.summary = pn.pane.HTML(_table("summary", []), stylesheets=css)
        self.positions = pn.pane.HTML(_table("positions", []), stylesheets=css)
        self.orders = pn.pane.HTML(_table("orders", []), stylesheets=css)
        self._layout = pn.Column(
            pn.Row(self.slider, self.seq_input, latest, sizing_mode="stretch_width"),
            self.readout,
            self.summary,
            pn.Row(
                pn.Column("Positions", self.positions, sizing_mode="stretch_width"),
                pn.Column("Open orders", self.orders, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
            css_classes=["sl-time-travel"],
        )
        self._syncing = False
        self._lock = threading.Lock()
        self._wanted: int | None = None
        self._running = False
        if self._state_at is None:
            self.slider.disabled = self.seq_input.disabled = latest.disabled = True
            self.readout.object = _readout("Time travel is not available for this engine.")
            return
        # Subject.on_next is called from the session loop only (never from two threads).
        self._subject: Subject[int] = Subject()
        pause = debounced(
            TIME_TRAVEL_DEBOUNCE_S, loop_scheduler(self.bridge), max_wait=TIME_TRAVEL_MAX_WAIT_S
        )
        self.bridge.own(self._subject.pipe(pause).subscribe(on_next=self._request))
        self.slider.param.watch(self._on_value, "value")
        self.seq_input.param.watch(self._on_value, "value")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def refresh_range(self, *, move: bool) -> None:
        """Session loop: stretch the slider to the engine's last seq; with ``move``, go there
        (and restore it); without, a new slider starts at the end and restores nothing."""
        if self._state_at is None:
            return
        last = int(getattr(getattr(self._kernel, "store", None), "last_seq", 0) or 0)
        self._syncing = True
        try:
            self.slider.end = max(last, 1)
            self.seq_input.end = max(last, 1)
            if self.result is None and not move:
                self.slider.value = self.seq_input.value = last
        finally:
            self._syncing = False
        if move:
            if self.slider.value == last:
                self._subject.on_next(last)  # already there: ask again (the log moved on)
                self._set_loading(True)
            else:
                self.slider.value = last

    def _on_value(self, event: Any) -> None:
        """Session loop: a slider or seq-box change; mirror it and hand it to the debounce."""
        if self._syncing or event.new is None:
            return
        seq = max(0, min(int(event.new), int(self.slider.end)))
        self._syncing = True
        try:
            self.slider.value = seq
            self.seq_input.value = seq
        finally:
            self._syncing = False
        self._set_loading(True)
        self._subject.on_next(seq)

    def _set_loading(self, loading: bool) -> None:
        for pane in (self.summary, self.positions, self.orders):
            pane.loading = loading

    def _request(self, seq: int) -> None:
        """Debounce timer (the session loop when served): restore ``seq`` on the worker thread
        (one per session at a time; the newest request wins)."""
        with self._lock:
            self._wanted = seq
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._work, name="analytics-time-travel", daemon=True).start()

    def _work(self) -> None:
        """Worker thread: restore the newest wanted seq until none is left."""
        assert self._state_at is not None
        while True:
            with self._lock:
                seq, self._wanted = self._wanted, None
                if seq is None or self.bridge.closed:
                    self._running = False
                    return
            self.requests += 1
            start = time.perf_counter()
            try:
                result = self.history.state_at(seq, self._state_at)
            except Exception as exc:
                message = f"Time travel to seq {seq} failed: {type(exc).__name__}: {exc}"
                self.bridge.post(functools.partial(self._failed, message), key="time-travel")
                self.bridge.toast("error", message)
                continue
            took_s = time.perf_counter() - start
            show = functools.partial(self._show, result, seq, took_s)
            self.bridge.post(show, key="time-travel")

    def _failed(self, message: str) -> None:
        self._set_loading(False)
        self.readout.object = _readout(message)

    def _show(self, result: dict[str, Any], requested: int, took_s: float) -> None:
        """Session loop: show one restored state (the newest finished restore)."""
        self.result = result
        rows = time_travel_rows(result)
        self.summary.object = _table("summary", rows["summary"])
        self.positions.object = _table("positions", rows["positions"])
        self.orders.object = _table("orders", rows["orders"])
        seq = int(result["seq"])
        when = fmt_ns(int(result["ts"])) or "-"
        where = (
            f"snapshot at seq {int(result['snapshot_seq']):,} + {int(result['replayed']):,} "
            f"events replayed"
            if result["snapshot_seq"]
            else f"{int(result['replayed']):,} events replayed from the start"
        )
        self.readout.object = _readout(
            f"As of seq <b>{seq:,}</b> of {int(self.slider.end):,} &middot; {when} UTC "
            f"&middot; {html.escape(str(result.get('type') or '-'))} &middot; {where} "
            f"&middot; {took_s * 1e3:,.0f} ms",
            seq=seq,
        )
        # Still loading while the slider has moved on to a seq not restored yet.
        self._set_loading(requested != self.slider.value)
