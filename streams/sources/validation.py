"""Checks on market data at the edge: a bad tick or bar becomes a ``DataRejected`` event.

A rejection names the field, the value and the reason, and is counted per reason; the feed and
the engine go on. ``DataRejected.reason`` always starts with a short code followed by a colon
and a human explanation (``"crossed: bid 101.0 is above ask 100.0"``), so consumers can group
by the code and people can read the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from streams import topics
from streams.errors import DataRejected as DataRejectedError
from streams.errors import EventError
from streams.events import BarReceived, DataRejected, Event, TickReceived

# Reason codes: the part of ``DataRejected.reason`` before the first colon.
NOT_FINITE = "not_finite"
NOT_A_NUMBER = "not_a_number"
NON_POSITIVE = "non_positive"
NO_PRICE = "no_price"
CROSSED = "crossed"
HIGH_BELOW_LOW = "high_below_low"
OUTSIDE_RANGE = "outside_range"
NEGATIVE_SIZE = "negative_size"
OUT_OF_ORDER = "out_of_order"
DUPLICATE = "duplicate"
UNKNOWN_SYMBOL = "unknown_symbol"
INVALID_SYMBOL = "invalid_symbol"
BAD_TIMESTAMP = "bad_timestamp"
MALFORMED = "malformed"

REASONS = (
    NOT_FINITE,
    NOT_A_NUMBER,
    NON_POSITIVE,
    NO_PRICE,
    CROSSED,
    HIGH_BELOW_LOW,
    OUTSIDE_RANGE,
    NEGATIVE_SIZE,
    OUT_OF_ORDER,
    DUPLICATE,
    UNKNOWN_SYMBOL,
    INVALID_SYMBOL,
    BAD_TIMESTAMP,
    MALFORMED,
)


class FieldRejected(DataRejectedError):
    """Raised while turning raw input (a row, a message) into an event; names field and value.

    Parsers raise it; feeds and generators turn it into a ``DataRejected`` event.
    """

    def __init__(self, field: str, value: Any, code: str, detail: str) -> None:
        self.field = field
        self.value = value
        self.code = code
        self.detail = detail
        super().__init__(f"{field}={value!r}: {code}: {detail}")

    def event(self, source: str, symbol: str, ts_event: int = 0, ts_init: int = 0) -> DataRejected:
        """This rejection as a ``DataRejected`` event of ``source``: ``value`` is stored as its
        ``repr`` (cut to 200 chars), ``reason`` as ``"<code>: <detail>"``."""
        text = self.value if isinstance(self.value, str) else repr(self.value)
        return DataRejected(
            source=source,
            symbol=symbol,
            field=self.field,
            value=text[:200],
            reason=f"{self.code}: {self.detail}",
            ts_event=ts_event,
            ts_init=ts_init or ts_event,
        )


def reason_code(reason: str) -> str:
    """The code at the start of a ``DataRejected.reason`` (``"crossed"`` for ``"crossed: ..."``)."""
    return reason.split(":", 1)[0].strip()


class MarketDataValidator:
    """Validates ticks and bars of one source; keeps per-symbol order and per-reason counts.

    ``check_tick``/``check_bar`` return the event itself when it is valid, otherwise a
    ``DataRejected`` event. Only accepted events advance a symbol's last timestamp, so one bad
    tick does not make the next good one look out of order. Not thread-safe: one feed thread
    owns a validator; reading ``rejected``/``accepted`` from elsewhere is fine.
    """

    def __init__(self, known_symbols: Iterable[str] | None = None, source: str = "") -> None:
        self.known_symbols: frozenset[str] | None = (
            frozenset(known_symbols) if known_symbols is not None else None
        )
        self.source = source
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self._last_ts: dict[tuple[str, str], int] = {}

    @property
    def rejected_total(self) -> int:
        """All rejections counted so far."""
        return sum(self.rejected.values())

    def reset_order(self) -> None:
        """Forget the last timestamps seen (e.g. before a deliberate replay from the start)."""
        self._last_ts.clear()

    def check(self, event: Event) -> Event:
        """Check any event: ticks and bars are validated, DataRejected counted, others passed."""
        if isinstance(event, TickReceived):
            return self.check_tick(event)
        if isinstance(event, BarReceived):
            return self.check_bar(event)
        if isinstance(event, DataRejected):
            self.rejected[reason_code(event.reason)] += 1
        return event

    def check_tick(self, tick: TickReceived) -> TickReceived | DataRejected:
        """``tick`` if it is valid, else a ``DataRejected`` naming the first failed check."""
        try:
            self._check_symbol(tick.symbol)
            prices = {"bid": tick.bid, "ask": tick.ask, "last": tick.last}
            present = {name: value for name, value in prices.items() if value is not None}
            if not present:
                raise FieldRejected("price", None, NO_PRICE, "tick has no bid, ask or last")
            for name, value in present.items():
                _check_price(name, value)
            _check_finite("size", tick.size)
            if tick.size < 0:
                raise FieldRejected("size", tick.size, NEGATIVE_SIZE, "size must be >= 0")
            if tick.bid is not None and tick.ask is not None and tick.bid > tick.ask:
                raise FieldRejected(
                    "bid", tick.bid, CROSSED, f"bid {tick.bid} is above ask {tick.ask}"
                )
            self._check_order("tick", tick.symbol, tick.ts_event)
        except FieldRejected as exc:
            return self._reject(tick.symbol, exc, tick.ts_event, tick.ts_init)
        self.accepted += 1
        return tick

    def check_bar(self, bar: BarReceived) -> BarReceived | DataRejected:
        """``bar`` if it is valid, else a ``DataRejected`` naming the first failed check."""
        try:
            self._check_symbol(bar.symbol)
            for name in ("open", "high", "low", "close"):
                _check_price(name, getattr(bar, name))
            _check_finite("volume", bar.volume)
            if bar.volume < 0:
                raise FieldRejected("volume", bar.volume, NEGATIVE_SIZE, "volume must be >= 0")
            if bar.high < bar.low:
                raise FieldRejected(
                    "high", bar.high, HIGH_BELOW_LOW, f"high {bar.high} is below low {bar.low}"
                )
            for name in ("open", "close"):
                value = getattr(bar, name)
                if not bar.low <= value <= bar.high:
                    raise FieldRejected(
                        name,
                        value,
                        OUTSIDE_RANGE,
                        f"{name} {value} is outside [low {bar.low}, high {bar.high}]",
                    )
            self._check_order("bar", bar.symbol, bar.ts_event)
        except FieldRejected as exc:
            return self._reject(bar.symbol, exc, bar.ts_event, bar.ts_init)
        self.accepted += 1
        return bar

    def reject(
        self, symbol: str, error: FieldRejected, ts_event: int = 0, ts_init: int = 0
    ) -> DataRejected:
        """Count ``error`` and turn it into a ``DataRejected`` event (for parsers of raw input)."""
        return self._reject(symbol, error, ts_event, ts_init)

    # -- helpers -------------------------------------------------------------------------
    def _reject(
        self, symbol: str, error: FieldRejected, ts_event: int, ts_init: int
    ) -> DataRejected:
        self.rejected[error.code] += 1
        return error.event(self.source, symbol, ts_event, ts_init)

    def _check_symbol(self, symbol: str) -> None:
        if self.known_symbols is not None and symbol not in self.known_symbols:
            raise FieldRejected(
                "symbol",
                symbol,
                UNKNOWN_SYMBOL,
                f"symbol {symbol!r} is not one of {sorted(self.known_symbols)}",
            )

    def _check_order(self, kind: str, symbol: str, ts_event: int) -> None:
        key = (kind, symbol)
        last = self._last_ts.get(key)
        if last is not None and ts_event <= last:
            code = DUPLICATE if ts_event == last else OUT_OF_ORDER
            raise FieldRejected(
                "ts_event",
                ts_event,
                code,
                f"{kind} timestamp {ts_event} is not after the last one {last} for {symbol}",
            )
        self._last_ts[key] = ts_event


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldRejected(name, value, NOT_A_NUMBER, f"{name} must be a number")
    if not math.isfinite(value):
        raise FieldRejected(name, value, NOT_FINITE, f"{name} must be finite")


def _check_price(name: str, value: float) -> None:
    _check_finite(name, value)
    if value <= 0:
        raise FieldRejected(name, value, NON_POSITIVE, f"{name} must be > 0")


def check_symbol_topic(symbol: Any) -> str:
    """``symbol`` as a string usable in a topic; ``FieldRejected`` when it is not."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise FieldRejected("symbol", symbol, INVALID_SYMBOL, "symbol must be a non-empty string")
    try:
        topics.ticks(symbol)
    except EventError as exc:
        raise FieldRejected("symbol", symbol, INVALID_SYMBOL, str(exc)) from None
    return symbol
