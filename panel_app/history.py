"""The lazy tier: history and event-log queries on demand, cached with a TTL.

Queries go through ``EventLog.read``/``read_df`` with their filters passed as arguments (the
log binds them as SQL parameters; nothing here builds SQL). Results are cached per query for
``ttl_s`` seconds and shared by every session of the engine. Time travel (the state as of a
seq, restored by the engine's ``Kernel.state_at``) is cached the same way, and runs one restore
at a time per engine.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

import pandas as pd

from panel_app.aggregates import TradeAggregator
from panel_app.facade import EventLogReader
from streams import topics
from streams.events import BarReceived, TickReceived, TradeExecuted

T = TypeVar("T")

#: What :meth:`TtlCache.get` returns for a key it does not hold (or holds expired).
MISSING: Any = object()

TRADE_COLUMNS = ["seq", "time", "strategy", "symbol", "side", "qty", "price", "commission"]
EVENT_COLUMNS = ["seq", "time", "topic", "type", "payload"]


class TtlCache:
    """A small thread-safe cache whose entries expire ``ttl_s`` seconds after they were made."""

    def __init__(self, ttl_s: float, max_entries: int = 256) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._items: dict[Hashable, tuple[float, Any]] = {}
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value for ``key``, or ``compute()`` stored for ``ttl_s`` seconds."""
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0] > now:
                self.hits += 1
                return found[1]
            self.misses += 1
        value = compute()
        with self._lock:
            if len(self._items) >= self.max_entries:
                for old in sorted(self._items, key=lambda k: self._items[k][0])[
                    : self.max_entries // 4 or 1
                ]:
                    del self._items[old]
            self._items[key] = (now + self.ttl_s, value)
        return value

    def get(self, key: Hashable) -> Any:
        """The cached value for ``key`` if it has not expired, else :data:`MISSING` (no
        compute, not counted)."""
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0] > time.monotonic():
                return found[1]
        return MISSING

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()


def fmt_ns(ts_ns: int) -> str:
    """An event timestamp as ``YYYY-MM-DD HH:MM:SS.mmm`` UTC."""
    if not ts_ns:
        return ""
    moment = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class HistoryService:
    """Paged trade history and a filtered event-log browser over one engine's log."""

    def __init__(
        self, log: EventLogReader, aggregates: TradeAggregator, *, ttl_s: float = 30.0
    ) -> None:
        self._log = log
        self._aggregates = aggregates
        self.cache = TtlCache(ttl_s)
        self._restore_lock = threading.Lock()
        #: Restores run by :meth:`state_at` (cache misses), for tests and benchmarks.
        self.restores = 0

    def trade_page(self, page: int, size: int) -> pd.DataFrame:
        """Trades of page ``page`` (0 = newest), newest first."""
        bounds = self._aggregates.trade_page_bounds(page, size)
        if bounds is None:
            return pd.DataFrame(columns=TRADE_COLUMNS)

        def compute() -> pd.DataFrame:
            since, until = bounds
            events = self._log.read(since_seq=since, until_seq=until, types=["trade_executed"])
            rows = [
                {
                    "seq": e.seq,
                    "time": fmt_ns(e.ts_event),
                    "strategy": e.strategy,
                    "symbol": e.symbol,
                    "side": e.side,
                    "qty": e.qty,
                    "price": e.price,
                    "commission": e.commission,
                }
                for e in reversed(events)
                if isinstance(e, TradeExecuted)
            ]
            return pd.DataFrame(rows, columns=TRADE_COLUMNS)

        return self.cache.get_or_compute(("trades", bounds), compute)

    def events(
        self,
        *,
        topic: str | None = None,
        types: tuple[str, ...] = (),
        start_ns: int | None = None,
        end_ns: int | None = None,
        since_seq: int = 0,
        limit: int = 50,
    ) -> pd.DataFrame:
        """Events matching the filters after ``since_seq``, oldest first, at most ``limit``.

        Raises the log's EventError/PersistenceError for a malformed topic pattern or bound.
        """
        key = ("events", topic, types, start_ns, end_ns, since_seq, limit)

        def compute() -> pd.DataFrame:
            df = self._log.read_df(
                since_seq=since_seq,
                topic=topic or None,
                types=list(types) or None,
                start_ns=start_ns,
                end_ns=end_ns,
                limit=limit,
            )
            if df.empty:
                return pd.DataFrame(columns=EVENT_COLUMNS)
            out = pd.DataFrame(
                {
                    "seq": df["seq"],
                    "time": [fmt_ns(int(t)) for t in df["ts_event"]],
                    "topic": df["topic"],
                    "type": df["type"],
                    "payload": [_short(p) for p in df["payload"]],
                }
            )
            return out

        return self.cache.get_or_compute(key, compute)

    def price_history(
        self, symbol: str, start_ns: int, end_ns: int, *, points: int, rows: int = 20_000
    ) -> dict[str, list[Any]]:
        """One symbol's prices with ``start_ns <= ts_event < end_ns`` (a bar's close, a tick's
        last or mid) and its fills there, for a chart scrolled back past its first point.

        Reads the newest ``rows`` market events of the range and keeps at most ``points`` of
        them, evenly spaced (the newest always kept); ``"from"`` is the time the answer
        covers from: ``start_ns``, or the oldest event read when ``rows`` cut the range.
        """
        key = ("price_history", symbol, start_ns, end_ns, points, rows)

        def compute() -> dict[str, list[Any]]:
            types = [BarReceived.TYPE, TickReceived.TYPE]
            market = self._log.read_df(
                topic=topics.market_data(symbol),
                types=types,
                start_ns=start_ns,
                end_ns=end_ns,
                limit=rows,
                newest=True,
            )
            covered = start_ns
            if len(market) >= rows:
                covered = int(market["ts_event"].iloc[0])
            step = max(1, -(-len(market) // max(points, 1)))  # ceil: at most `points` kept
            picked = market.iloc[::-1].iloc[::step].iloc[::-1]  # stride from the newest
            t, price = [], []
            for ts, payload in zip(picked["ts_event"], picked["payload"], strict=True):
                value = _quote(json.loads(payload) if isinstance(payload, str) else payload)
                if value is not None:
                    t.append(int(ts))
                    price.append(value)
            fills = self._log.read_df(
                topic=topics.ALL_FILLS, types=[TradeExecuted.TYPE], start_ns=covered, end_ns=end_ns
            )
            marks = [
                (int(ts), data)
                for ts, raw in zip(fills["ts_event"], fills["payload"], strict=True)
                if (data := json.loads(raw) if isinstance(raw, str) else raw).get("symbol")
                == symbol
            ]
            return {
                "from": [covered],
                "t": t,
                "price": price,
                "fill_t": [ts for ts, _ in marks],
                "fill_price": [float(d["price"]) for _, d in marks],
                "fill_side": [str(d["side"]) for _, d in marks],
            }

        return self.cache.get_or_compute(key, compute)

    def state_at(self, seq: int, restore: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        """The state as of ``seq``: ``restore(seq)`` (the engine's ``Kernel.state_at``: newest
        snapshot at or before ``seq`` + the events after it), cached for ``ttl_s``.

        Blocks for as long as the restore takes: call it off the session's loop. One restore
        runs at a time per engine: a restore is pure Python under the GIL, beside the engine
        thread, so sessions dragging their sliders together queue instead of piling up (a
        session waiting here for a seq another one is restoring gets the cached result).
        A seq beyond the log is restored as of its last event and is not cached (the log
        grows).
        """
        key = ("state_at", int(seq))
        found = self.cache.get(key)
        if found is not MISSING:
            return cast(dict[str, Any], found)
        with self._restore_lock:
            found = self.cache.get(key)
            if found is not MISSING:
                return cast(dict[str, Any], found)
            self.restores += 1
            result = restore(int(seq))
            if int(result["seq"]) >= int(seq):
                self.cache.get_or_compute(key, lambda: result)
            return result


def _quote(payload: dict[str, Any]) -> float | None:
    """The price a market event charts: a bar's close; a tick's last, else its mid."""
    for name in ("close", "last"):
        if payload.get(name) is not None:
            return float(payload[name])
    bid, ask = payload.get("bid"), payload.get("ask")
    return (float(bid) + float(ask)) / 2 if bid is not None and ask is not None else None


def _short(payload: Any, width: int = 160) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
