"""The newest fills of one engine, shared by every dashboard session.

One :class:`RecentTrades` per engine keeps the last ``capacity`` fills in seq order (newest
shown first), seeded from the event log when the dashboard starts, so a new or reloaded page
shows the recent tape at once. The HTML of the recent-trades table is rendered once per
change and column choice, however many sessions show it.

Fills reach it twice on purpose: from its own bus subscription, and from each session's fill
callback (:meth:`add` is idempotent by ``fill_id``), so a session drains a tape that already
holds the fill it was told about, whichever subscriber the bus called first.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from typing import Any

from panel_app.facade import EventBus, EventLogReader
from panel_app.history import fmt_ns
from panel_app.html_tables import Column, html_table, money, quantity
from streams import topics
from streams.events import Event, TradeExecuted

TRADE_FIELDS = ("time", "strategy", "symbol", "side", "qty", "price", "fill_id")
_COLUMNS = {
    "time": Column("time", "time"),
    "strategy": Column("strategy", "strategy"),
    "symbol": Column("symbol", "symbol"),
    "side": Column("side", "side"),
    "qty": Column("qty", "qty", quantity, numeric=True),
    "price": Column("price", "price", money, numeric=True),
    "fill_id": Column("fill_id", "fill id"),
}


def trade_row(event: TradeExecuted) -> dict[str, Any]:
    """One row of the recent-trades table."""
    return {
        "time": fmt_ns(event.ts_event),
        "strategy": event.strategy,
        "symbol": event.symbol,
        "side": event.side,
        "qty": event.qty,
        "price": event.price,
        "fill_id": event.fill_id,
    }


def row_cells(row: dict[str, Any]) -> dict[str, str]:
    """A row's table cells as text, formatted as :meth:`RecentTrades.html` shows them (what
    the page's tape script inserts, :mod:`panel_app.views.tape`)."""
    return {field: column.render(row[field]) for field, column in _COLUMNS.items()}


def trade_cells(event: TradeExecuted) -> dict[str, str]:
    """One fill's table cells as text (see :func:`row_cells`)."""
    return row_cells(trade_row(event))


class RecentTrades:
    """The last ``capacity`` fills of an engine, in seq order; thread-safe.

    Fills without a seq (not from the log) go after those with one, in arrival order.
    """

    def __init__(self, capacity: int = 20, *, height_px: int = 170) -> None:
        self.capacity = max(1, int(capacity))
        self.height_px = height_px
        self._lock = threading.Lock()
        self._keys: list[tuple[int, int]] = []  # (seq or +inf-ish, arrival) per row, sorted
        self._rows: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._arrivals = 0
        self.version = 0
        self._html: dict[tuple[str, ...], tuple[int, str]] = {}
        self._sub: Any = None

    # -- wiring -------------------------------------------------------------------------------
    def attach(
        self, bus: EventBus, log: EventLogReader | None = None, bounds: Any = None
    ) -> RecentTrades:
        """Subscribe to fills on ``bus``, then seed the newest fills already in ``log``.

        ``bounds`` is the aggregator's ``trade_page_bounds`` (finds the newest trades' seqs
        without scanning the log); without it nothing is seeded.
        """
        self._sub = bus.subscribe(topics.ALL_FILLS, self.on_event, name="ui:recent-trades")
        if log is not None and bounds is not None:
            found = bounds(0, self.capacity)
            if found is not None:
                since, until = found
                for event in log.read(since, until, types=["trade_executed"]):
                    self.on_event(event)
        return self

    def detach(self) -> None:
        """Dispose of the bus subscription."""
        if self._sub is not None:
            self._sub.dispose()
            self._sub = None

    # -- folding (any thread) -----------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Bus callback: add fills, ignore anything else."""
        if isinstance(event, TradeExecuted):
            self.add(event)

    def add(self, event: TradeExecuted) -> bool:
        """Add one fill (no-op if its ``fill_id`` is already here); True if added."""
        with self._lock:
            if event.fill_id in self._ids:
                return False
            self._arrivals += 1
            key = (event.seq or (1 << 62), self._arrivals)
            at = bisect.bisect(self._keys, key)
            if at == 0 and len(self._rows) >= self.capacity:
                return False  # older than everything kept
            self._keys.insert(at, key)
            self._rows.insert(at, trade_row(event))
            self._ids.add(event.fill_id)
            while len(self._rows) > self.capacity:
                self._keys.pop(0)
                self._ids.discard(self._rows.pop(0)["fill_id"])
            self.version += 1
            return True

    # -- reading (any thread) -----------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Copies of the kept rows, newest first."""
        with self._lock:
            return [dict(r) for r in reversed(self._rows)]

    def html(self, columns: Sequence[str] = TRADE_FIELDS) -> str:
        """The recent-trades table (newest first) with ``columns``; rendered once per change."""
        chosen = tuple(c for c in columns if c in _COLUMNS) or TRADE_FIELDS
        with self._lock:
            cached = self._html.get(chosen)
            if cached is not None and cached[0] == self.version:
                return cached[1]
            version, rows = self.version, list(reversed(self._rows))
        rendered = html_table(
            "recent-trades",
            [_COLUMNS[c] for c in chosen],
            rows,
            key="fill_id",
            empty="no trades yet",
            height_px=self.height_px,
        )
        with self._lock:
            if len(self._html) > 16:
                self._html.clear()
            self._html[chosen] = (version, rendered)
        return rendered
