"""The market data of a backtest of several symbols: which symbols, and their bars merged in time.

A multi-symbol backtest takes several files (one ``--symbol`` per file, in order) or one file
with a ``symbol`` column (``--symbol`` then picks some of its symbols). Each symbol's rows are
parsed into their own :func:`~streams.sources.load_replay_table` table, kept in file order
(a row out of time order is still rejected by the validator, per symbol), and the symbols'
bars are merged by timestamp: bars sharing a timestamp come in symbol order (alphabetical), so
the same data gives the same event order whichever form it came in. The kernel then handles
them one at a time, each to completion, as it handles a live feed of several symbols.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streams.errors import ConfigError
from streams.events import Event
from streams.sources import ReplayTable, load_replay_table
from streams.sources._frames import as_frame
from streams.sources.validation import FieldRejected, check_symbol_topic


class MergedTable:
    """Bars of several symbols, one parsed table per symbol, replayed merged by timestamp.

    Offers what a backtest reads of a :data:`~streams.sources.ReplayTable`: ``count``,
    ``first_ts``, ``last_ts``, ``kind`` and :meth:`events`. ``symbols`` are the valid symbols
    in tie order (rows with a bad symbol are replayed too, and rejected by name). Parsed once,
    it can be replayed by many runs (the optimizer's)."""

    kind = "bars"

    def __init__(self, tables: dict[str, ReplayTable]) -> None:
        order = sorted(tables)
        self.symbols = tuple(s for s in order if _is_symbol(s))
        self._tables = [tables[s] for s in order]
        self.count = sum(t.count for t in self._tables)
        firsts = [t.first_ts for t in self._tables if t.first_ts is not None]
        lasts = [t.last_ts for t in self._tables if t.last_ts is not None]
        self.first_ts = min(firsts) if firsts else None
        self.last_ts = max(lasts) if lasts else None

    def events(self, *, source: str) -> Iterator[Event]:
        """Every symbol's events (bars, or ``data_rejected`` for bad rows) merged by
        ``ts_event``; ties keep the symbol order (``heapq.merge`` is stable)."""
        streams = [t.events(source=source) for t in self._tables]
        return heapq.merge(*streams, key=lambda event: event.ts_event)


def symbol_list(symbol: str | Sequence[str] | None) -> tuple[str, ...]:
    """``symbol`` as upper-case symbols in the order given; ConfigError naming ``--symbol``
    for a duplicate or an empty one."""
    if symbol is None:
        return ()
    given = [symbol] if isinstance(symbol, str) else list(symbol)
    wanted: list[str] = []
    for item in given:
        name = str(item).strip().upper()
        if not name:
            raise ConfigError(f"--symbol: a symbol must not be empty, got {item!r}")
        if name in wanted:
            raise ConfigError(f"--symbol {name!r} is given twice: each symbol once")
        wanted.append(name)
    return tuple(wanted)


def load_symbols(data: Any, symbols: tuple[str, ...]) -> ReplayTable | MergedTable:
    """The bars of ``data`` for ``symbols``: a plain table when they are one symbol's, else a
    :class:`MergedTable`.

    ``data`` is a list of files/frames (one per symbol of ``symbols``, in order) or one
    file/frame: with a ``symbol`` column, ``symbols`` (if any) picks rows of those symbols;
    without one, it needs exactly one symbol. ConfigError names ``--data``/``--symbol``."""
    if isinstance(data, list | tuple):
        if len(data) == 1:
            return load_symbols(data[0], symbols)
        return _several_files(list(data), symbols)
    frame = _read(data)
    if "symbol" not in frame.columns:
        if len(symbols) > 1:
            raise ConfigError(
                f"{_name(data)} has no 'symbol' column, so it holds one symbol, but "
                f"--symbol names {len(symbols)}: {list(symbols)}; give one --data file per "
                "--symbol, or one file with a symbol column"
            )
        if not symbols:
            raise ConfigError(
                f"{_name(data)} has no 'symbol' column: name its symbol with --symbol"
            )
        return _table(frame, symbols[0], data)
    groups = _by_symbol(frame)
    valid = [s for s in groups if _is_symbol(s)]
    chosen = list(symbols) or sorted(valid)
    missing = [s for s in chosen if s not in groups]
    if missing:
        raise ConfigError(
            f"--symbol {missing[0]!r} is not in {_name(data)} "
            f"(its symbol column has {sorted(valid)})"
        )
    if not symbols:  # every row, those with a bad symbol too: they are rejected, not lost
        chosen = sorted(groups)
    if len(chosen) == 1:
        return _table(groups[chosen[0]], chosen[0], data)
    return MergedTable({s: _table(groups[s], s, data) for s in chosen})


def _several_files(files: list[Any], symbols: tuple[str, ...]) -> MergedTable:
    if len(symbols) != len(files):
        raise ConfigError(
            f"--data is given {len(files)} times but --symbol {len(symbols)} times: "
            "several --data files need one --symbol each, in the same order"
        )
    tables: dict[str, ReplayTable] = {}
    for item, symbol in zip(files, symbols, strict=True):
        frame = _read(item)
        if "symbol" in frame.columns:
            groups = _by_symbol(frame)
            if symbol not in groups:
                raise ConfigError(
                    f"--symbol {symbol!r} is not in {_name(item)} "
                    f"(its symbol column has {sorted(s for s in groups if _is_symbol(s))})"
                )
            frame = groups[symbol]
        tables[symbol] = _table(frame, symbol, item)
    return MergedTable(tables)


def _read(data: Any) -> Any:
    try:
        return as_frame(data)
    except ConfigError as exc:
        raise ConfigError(f"{_where(data)}{exc}") from exc


def _by_symbol(frame: Any) -> dict[str, Any]:
    """The rows of each symbol (upper-cased, in file order); a row whose symbol is not text
    keeps its raw value, and its text as its key, so validation rejects it by name."""
    raw = frame["symbol"].tolist()
    keys = [v.strip().upper() if isinstance(v, str) else str(v) for v in raw]
    frame = frame.assign(
        symbol=[k if isinstance(v, str) else v for k, v in zip(keys, raw, strict=True)]
    )
    return {
        key: frame[[k == key for k in keys]].reset_index(drop=True) for key in dict.fromkeys(keys)
    }


def _table(frame: Any, symbol: str | None, data: Any) -> ReplayTable:
    try:
        return load_replay_table(frame, kind="bars", symbol=symbol)
    except ConfigError as exc:
        raise ConfigError(f"{_where(data)}{exc}") from exc


def _is_symbol(name: str) -> bool:
    try:
        check_symbol_topic(name)
    except FieldRejected:
        return False
    return True


def _where(data: Any) -> str:
    """The prefix of an error about a file: ``--data 'F': `` (none for a frame)."""
    return f"--data {str(data)!r}: " if isinstance(data, str | Path) else ""


def _name(data: Any) -> str:
    return f"--data {str(data)!r}" if isinstance(data, str | Path) else "the data frame"


def data_symbols(table: ReplayTable) -> tuple[str, ...]:
    """The valid symbols a parsed table's rows carry, sorted."""
    return tuple(sorted(s for s in set(table.symbols) if isinstance(s, str) and _is_symbol(s)))
