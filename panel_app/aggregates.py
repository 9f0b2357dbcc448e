"""Pre-computed trading aggregates, kept up to date from events once per engine.

One :class:`TradeAggregator` per engine subscribes to fills, positions and P&L on the bus and
folds them into small tables (P&L by symbol and by day, an equity/drawdown curve, the seqs of
all trades for paging). Sessions read copies; nothing is recomputed per view. It is seeded
from the event log when attached, so a restarted dashboard shows history at once.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from typing import Any

from panel_app.facade import EventBus, EventLogReader
from streams import topics
from streams.events import Event, PnlUpdated, PositionClosed, PositionUpdated, TradeExecuted

_SEED_TYPES = ("trade_executed", "position_updated", "position_closed")


def _day(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d")


class TradeAggregator:
    """P&L by symbol and by day, trade counts, and an equity curve; thread-safe reads.

    Writes happen on the engine thread (bus callbacks) or during :meth:`seed`; reads from any
    thread under the same lock. ``curve_points`` bounds the equity curve; ``curve_step_s`` is
    the minimum spacing of its points (P&L updates arrive much faster than a chart needs).
    """

    def __init__(self, *, curve_points: int = 2_000, curve_step_s: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._by_symbol: dict[str, dict[str, float]] = {}
        self._by_day: dict[str, dict[str, float]] = {}
        self._realized: dict[str, float] = {}
        self._trade_seqs: list[int] = []
        self._curve: collections.deque[tuple[int, float, float]] = collections.deque(
            maxlen=curve_points
        )
        self._step_ns = int(curve_step_s * 1e9)
        self._max_drawdown = 0.0
        self.version = 0
        self._subs: list[Any] = []

    # -- wiring -------------------------------------------------------------------------------
    def attach(self, bus: EventBus, log: EventLogReader | None = None) -> TradeAggregator:
        """Seed from ``log`` (if given) and subscribe to the bus; call once per engine."""
        if log is not None:
            self.seed(log)
        self._subs = [
            bus.subscribe(topics.ALL_FILLS, self.on_event, name="ui:aggregates"),
            bus.subscribe(topics.ALL_POSITIONS, self.on_event, name="ui:aggregates"),
            bus.subscribe(topics.PNL, self.on_event, name="ui:aggregates"),
        ]
        return self

    def detach(self) -> None:
        """Dispose of the bus subscriptions."""
        for sub in self._subs:
            sub.dispose()
        self._subs = []

    def seed(self, log: EventLogReader) -> None:
        """Fold the trading history already in the event log."""
        for batch in log.iter_batches(types=_SEED_TYPES, batch_size=20_000):
            for event in batch:
                self.on_event(event)

    # -- folding (engine thread) ---------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Fold one event (ignores types it does not aggregate and seqs already seen)."""
        with self._lock:
            if isinstance(event, TradeExecuted):
                if self._trade_seqs and event.seq and event.seq <= self._trade_seqs[-1]:
                    return
                row = self._symbol_row(event.symbol)
                row["trades"] += 1
                row["volume"] += event.qty * event.price
                row["commission"] += event.commission
                day = self._day_row(_day(event.ts_event))
                day["trades"] += 1
                day["commission"] += event.commission
                if event.seq:
                    self._trade_seqs.append(event.seq)
            elif isinstance(event, PositionUpdated | PositionClosed):
                previous = self._realized.get(event.symbol, 0.0)
                delta = event.realized_pnl - previous
                if not delta:
                    return
                self._realized[event.symbol] = event.realized_pnl
                self._symbol_row(event.symbol)["realized"] = event.realized_pnl
                self._day_row(_day(event.ts_event))["realized"] += delta
            elif isinstance(event, PnlUpdated):
                self._max_drawdown = max(self._max_drawdown, event.max_drawdown, event.drawdown)
                if self._curve and event.ts_event - self._curve[-1][0] < self._step_ns:
                    return
                self._curve.append((event.ts_event, event.equity, event.drawdown))
            else:
                return
            self.version += 1

    def _symbol_row(self, symbol: str) -> dict[str, float]:
        return self._by_symbol.setdefault(
            symbol, {"trades": 0, "volume": 0.0, "commission": 0.0, "realized": 0.0}
        )

    def _day_row(self, day: str) -> dict[str, float]:
        return self._by_day.setdefault(day, {"trades": 0, "commission": 0.0, "realized": 0.0})

    # -- reading (any thread) ------------------------------------------------------------------
    def by_symbol(self) -> list[dict[str, Any]]:
        """Rows ``{symbol, trades, volume, commission, realized, net}`` sorted by symbol."""
        with self._lock:
            return [
                {"symbol": s, **r, "net": r["realized"] - r["commission"]}
                for s, r in sorted(self._by_symbol.items())
            ]

    def by_day(self) -> list[dict[str, Any]]:
        """Rows ``{day, trades, commission, realized, net}`` sorted by day."""
        with self._lock:
            return [
                {"day": d, **r, "net": r["realized"] - r["commission"]}
                for d, r in sorted(self._by_day.items())
            ]

    def curve(self) -> list[tuple[int, float, float]]:
        """``(ts_ns, equity, drawdown)`` points, oldest first."""
        with self._lock:
            return list(self._curve)

    @property
    def max_drawdown(self) -> float:
        """The largest drawdown seen in any P&L update."""
        return self._max_drawdown

    def trade_count(self) -> int:
        """How many trades are in the history."""
        with self._lock:
            return len(self._trade_seqs)

    def trade_page_bounds(self, page: int, size: int) -> tuple[int, int] | None:
        """``(since_seq, until_seq)`` of page ``page`` (0 = newest trades), or None if empty."""
        with self._lock:
            n = len(self._trade_seqs)
            end = n - page * size
            if end <= 0 or size <= 0:
                return None
            start = max(0, end - size)
            return self._trade_seqs[start] - 1, self._trade_seqs[end - 1]
