"""Replay of recorded bars or ticks: pure generators for backtests, a paced thread for live demos.

Input is a pandas DataFrame, a CSV file or a Parquet file with a ``timestamp`` column (UTC;
naive datetimes are taken as UTC, integers as ns since the epoch) and either

* bars: ``open, high, low, close`` and optionally ``volume`` and ``symbol``, or
* ticks: ``symbol`` (or pass ``symbol=``), and any of ``bid, ask, last`` plus optional ``size``.
  In tick data an empty ``bid``/``ask``/``last`` cell means "not in this tick" (a quote without
  a trade); a tick with none of the three is rejected.

Rows are replayed in file order, never re-sorted: a row out of time order is rejected by the
validator, like any other bad row (NaN, non-numeric, crossed...). A bad row becomes a
``DataRejected`` event naming the field and value; it never stops the replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from streams.clock import Clock
from streams.errors import ConfigError, EventError
from streams.events import BarReceived, DataRejected, Event, TickReceived
from streams.sources import _frames
from streams.sources.feed import FeedBase, Publish, Sleep, Speed
from streams.sources.validation import (
    MALFORMED,
    FieldRejected,
    MarketDataValidator,
    check_symbol_topic,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pandas as pd

    MarketData = pd.DataFrame | str | Path
else:
    MarketData = Any

Kind = Literal["bars", "ticks"]
_NS_PER_S = 1_000_000_000


class _Table:
    """Market data parsed once, replayable many times with a time offset."""

    kind: Kind

    def __init__(self, frame: pd.DataFrame, symbol: str | None) -> None:
        self.count = len(frame)
        self.ts = _frames.timestamps(frame)
        self.symbols = _frames.symbols(frame, symbol)
        valid = [v for v in self.ts.values if v is not None]
        self.first_ts = min(valid) if valid else None
        self.last_ts = max(valid) if valid else None
        self.step_ns = _frames.median_step_ns(self.ts.values)

    def loop_shift_ns(self) -> int:
        """How far to shift each further pass so its timestamps follow this pass's last one."""
        if self.first_ts is None or self.last_ts is None:
            return 0
        return self.last_ts - self.first_ts + (self.step_ns or self._default_step_ns())

    def _default_step_ns(self) -> int:
        return _NS_PER_S

    def first_row_after(self, ts_ns: int, offset_ns: int = 0) -> int:
        """The first row (in file order) whose time, shifted by ``offset_ns``, is after
        ``ts_ns``; ``count`` when there is none. Rows before it are skipped on resume."""
        values = self.ts.values
        for row in range(self.count):
            value = values[row]
            if value is not None and value + offset_ns > ts_ns:
                return row
        return self.count

    def events(
        self,
        *,
        source: str,
        offset_ns: int = 0,
        clock: Clock | None = None,
        start_row: int = 0,
    ) -> Iterator[Event]:
        """One event per row from ``start_row``, in row order: the tick/bar, or DataRejected
        for a bad row."""
        for row in range(start_row, self.count):
            now = clock.now_ns() if clock is not None else 0
            raw_symbol = self.symbols[row]
            ts = self.ts.values[row]
            ts_event = ts + offset_ns if ts is not None else 0
            try:
                symbol = check_symbol_topic(raw_symbol)
                self.ts.get(row)
                yield self._event(row, symbol, source, ts_event, now or ts_event)
            except FieldRejected as exc:
                yield exc.event(source, str(raw_symbol), ts_event, now or ts_event)
            except (EventError, TypeError, ValueError, OverflowError) as exc:
                unread = FieldRejected("row", row, MALFORMED, f"row {row} could not be read: {exc}")
                yield unread.event(source, str(raw_symbol), ts_event, now or ts_event)

    def _event(self, row: int, symbol: str, source: str, ts_event: int, ts_init: int) -> Event:
        raise NotImplementedError


class _BarTable(_Table):
    kind: Kind = "bars"

    def __init__(self, frame: pd.DataFrame, symbol: str | None, interval_s: int | None) -> None:
        _frames.require_columns(frame, ("open", "high", "low", "close"), "bar")
        super().__init__(frame, symbol)
        self.open = _frames.numbers(frame, "open")
        self.high = _frames.numbers(frame, "high")
        self.low = _frames.numbers(frame, "low")
        self.close = _frames.numbers(frame, "close")
        self.volume = _frames.numbers(frame, "volume", default=0.0)
        if interval_s is None:
            interval_s = max(1, round(self.step_ns / _NS_PER_S)) if self.step_ns else 60
        if interval_s <= 0:
            raise ConfigError(f"interval_s must be > 0, got {interval_s!r}")
        self.interval_s = interval_s

    def _default_step_ns(self) -> int:
        return self.interval_s * _NS_PER_S

    def _event(self, row: int, symbol: str, source: str, ts_event: int, ts_init: int) -> Event:
        return BarReceived(
            symbol=symbol,
            open=self.open.get(row),
            high=self.high.get(row),
            low=self.low.get(row),
            close=self.close.get(row),
            volume=self.volume.get(row),
            interval_s=self.interval_s,
            source=source,
            ts_event=ts_event,
            ts_init=ts_init,
        )


class _TickTable(_Table):
    kind: Kind = "ticks"

    def __init__(self, frame: pd.DataFrame, symbol: str | None) -> None:
        prices = [c for c in ("bid", "ask", "last") if c in frame.columns]
        if not prices:
            raise ConfigError(
                "tick data needs at least one of the columns bid, ask, last; "
                f"has {[str(c) for c in frame.columns]}"
            )
        super().__init__(frame, symbol)
        self.bid = _frames.numbers(frame, "bid")
        self.ask = _frames.numbers(frame, "ask")
        self.last = _frames.numbers(frame, "last")
        self.size = _frames.numbers(frame, "size", default=0.0)

    def _event(self, row: int, symbol: str, source: str, ts_event: int, ts_init: int) -> Event:
        return TickReceived(
            symbol=symbol,
            bid=self.bid.optional(row),
            ask=self.ask.optional(row),
            last=self.last.optional(row),
            size=self.size.get(row),
            source=source,
            ts_event=ts_event,
            ts_init=ts_init,
        )


def _validated(
    events: Iterable[Event], source: str, validator: MarketDataValidator | None, validate: bool
) -> Iterator[Event]:
    if not validate:
        yield from events
        return
    checker = validator or MarketDataValidator(None, source)
    for event in events:
        yield checker.check(event)


def iter_bars(
    data: MarketData,
    symbol: str | None = None,
    *,
    source: str = "replay",
    interval_s: int | None = None,
    offset_ns: int = 0,
    clock: Clock | None = None,
    validator: MarketDataValidator | None = None,
    validate: bool = True,
) -> Iterator[BarReceived | DataRejected]:
    """``BarReceived`` per row (``DataRejected`` for bad rows), as fast as the consumer pulls.

    For backtests: no threads, no sleeping. ``symbol`` names the instrument when the data has
    no ``symbol`` column. ``interval_s`` defaults to the median gap between rows.
    ``offset_ns`` shifts every timestamp. ``clock`` stamps ``ts_init`` (default: the event
    time). Each event is checked by ``validator`` (a fresh one per call by default) unless
    ``validate`` is False. ConfigError at once if columns are missing.
    """
    table = _BarTable(_frames.as_frame(data), symbol, interval_s)
    events = table.events(source=source, offset_ns=offset_ns, clock=clock)
    return _validated(events, source, validator, validate)  # type: ignore[return-value]


def iter_ticks(
    data: MarketData,
    symbol: str | None = None,
    *,
    source: str = "replay",
    offset_ns: int = 0,
    clock: Clock | None = None,
    validator: MarketDataValidator | None = None,
    validate: bool = True,
) -> Iterator[TickReceived | DataRejected]:
    """``TickReceived`` per row (``DataRejected`` for bad rows); see :func:`iter_bars`."""
    table = _TickTable(_frames.as_frame(data), symbol)
    events = table.events(source=source, offset_ns=offset_ns, clock=clock)
    return _validated(events, source, validator, validate)  # type: ignore[return-value]


def load_replay_table(
    data: MarketData,
    *,
    kind: Kind = "bars",
    symbol: str | None = None,
    interval_s: int | None = None,
) -> ReplayTable:
    """Parse market data once for :class:`ReplayFeed` (which also takes the path or frame).

    ConfigError at once if the file is missing or a column is."""
    frame = _frames.as_frame(data)
    if kind == "bars":
        return _BarTable(frame, symbol, interval_s)
    if kind == "ticks":
        return _TickTable(frame, symbol)
    raise ConfigError(f"kind must be 'bars' or 'ticks', got {kind!r}")


#: Market data parsed for replay (see :func:`load_replay_table`): ``count`` rows,
#: ``first_ts``/``last_ts`` (ns) and ``kind``.
ReplayTable = _Table


class ReplayFeed(FeedBase):
    """Replays bars or ticks in its own thread, paced by ``speed``, validating each event.

    ``speed``: None or "max" = as fast as possible, 1.0 = real time, N = N times faster
    (changeable with :meth:`set_speed`). ``loop=True`` restarts at the end of the data with
    every timestamp shifted past the previous pass, so time keeps increasing (live demos).
    ``resume_after_ns`` skips every row up to that time (a restarted engine goes on where it
    stopped, on every pass). Progress: ``position`` rows done of ``total`` in the current pass,
    ``passes`` completed. ``data`` is a path, a frame or a table from
    :func:`load_replay_table`; it is parsed here, so a missing file or column raises
    ConfigError at construction.
    """

    def __init__(
        self,
        publish: Publish,
        clock: Clock | None,
        data: MarketData | ReplayTable,
        *,
        kind: Kind = "bars",
        symbol: str | None = None,
        speed: Speed = None,
        loop: bool = False,
        interval_s: int | None = None,
        source: str = "replay",
        name: str | None = None,
        known_symbols: Iterable[str] | None = None,
        validator: MarketDataValidator | None = None,
        sleep: Sleep | None = None,
        monotonic: Callable[[], float] | None = None,
        max_sleep_s: float = 0.25,
        resume_after_ns: int | None = None,
    ) -> None:
        super().__init__(
            publish,
            clock,
            name=name or source,
            source=source,
            known_symbols=known_symbols,
            validator=validator,
            speed=speed,
            sleep=sleep,
            monotonic=monotonic,
            max_sleep_s=max_sleep_s,
        )
        self._table: _Table = (
            data
            if isinstance(data, _Table)
            else load_replay_table(data, kind=kind, symbol=symbol, interval_s=interval_s)
        )
        self.kind: Kind = self._table.kind
        self.loop = loop
        self.resume_after_ns = resume_after_ns
        self.position = 0
        self.passes = 0

    @property
    def total(self) -> int:
        """Rows in one pass over the data."""
        return self._table.count

    @property
    def progress(self) -> float:
        """Fraction of the current pass done, 0.0 to 1.0."""
        return self.position / self.total if self.total else 1.0

    def _run(self) -> None:
        table = self._table
        shift = table.loop_shift_ns()
        offset, start = self._resume_point(shift)
        while not self._stopping:
            self.position = start
            events = table.events(
                source=self.source, offset_ns=offset, clock=self.clock, start_row=start
            )
            for event in events:
                if not self._pace(event.ts_event or None):
                    return
                self._emit(event)
                self.position += 1
            self.passes += 1
            start = 0
            if not self.loop or shift <= 0:
                return
            offset += shift

    def _resume_point(self, shift: int) -> tuple[int, int]:
        """``(offset, first row)`` of the first row after ``resume_after_ns``, on the pass
        that holds it; ``(0, count)`` when a non-looping replay has nothing left."""
        resume, table = self.resume_after_ns, self._table
        if resume is None or table.last_ts is None:
            return 0, 0
        offset = 0
        if self.loop and shift > 0 and resume >= table.last_ts:
            offset = ((resume - table.last_ts) // shift + 1) * shift
        return offset, table.first_row_after(resume, offset)
