"""The one place topic names are built, and wildcard matching over them.

Topics are dotted lowercase names. Patterns may use ``*`` for exactly one segment and a
trailing ``>`` (or ``**``) for one or more trailing segments, as in NATS subjects: ``fills.*``
matches ``fills.sma``; ``data.>`` matches ``data.ticks.aapl``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from streams.errors import EventError

_SEGMENT = re.compile(r"^[a-z0-9_\-]+$")


@lru_cache(maxsize=8192)
def _segment(value: str, what: str) -> str:
    seg = value.strip().lower().replace(".", "_").replace(" ", "_")
    if not seg or not _SEGMENT.match(seg):
        raise EventError(f"topic segment {what!r} has invalid value {value!r}")
    return seg


def ticks(symbol: str) -> str:
    """Quote/trade ticks for one symbol."""
    return f"data.ticks.{_segment(symbol, 'symbol')}"


def bars(symbol: str) -> str:
    """OHLCV bars for one symbol."""
    return f"data.bars.{_segment(symbol, 'symbol')}"


def market_data(symbol: str) -> str:
    """The pattern of one symbol's market data, bars and ticks (``data.*.<symbol>``)."""
    return f"data.*.{_segment(symbol, 'symbol')}"


def data_rejected(source: str) -> str:
    """Market data refused at the edge, per source."""
    return f"data.rejected.{_segment(source, 'source')}"


def data_dropped(source: str) -> str:
    """Market data a live feed had to drop (the engine fell behind), per source."""
    return f"data.dropped.{_segment(source, 'source')}"


def signals(strategy: str) -> str:
    """Signals detected by one strategy."""
    return f"signals.{_segment(strategy, 'strategy')}"


def orders(strategy: str) -> str:
    """Order lifecycle events of one strategy."""
    return f"orders.{_segment(strategy, 'strategy')}"


def fills(strategy: str) -> str:
    """Executions (trade_executed) of one strategy."""
    return f"fills.{_segment(strategy, 'strategy')}"


def positions(symbol: str) -> str:
    """Position changes for one symbol."""
    return f"positions.{_segment(symbol, 'symbol')}"


#: Every symbol's bars / ticks (patterns).
ALL_BARS = "data.bars.*"
ALL_TICKS = "data.ticks.*"
#: Market data any live feed had to drop (pattern).
ALL_DROPPED = "data.dropped.*"
#: Every strategy's orders / fills, every symbol's position changes (patterns).
ALL_ORDERS = "orders.*"
ALL_FILLS = "fills.*"
ALL_POSITIONS = "positions.*"
#: Every component's status, heartbeats and errors (pattern).
ALL_SYSTEM = "system.*"
#: Every topic (pattern): for subscribers that must see each event, e.g. a gate or a printer.
ALL_TOPICS = ">"

PNL = "pnl"
RISK = "risk"
COMMANDS = "commands"
STATE = "state"
RECONCILIATION = "reconciliation"


def system(component: str) -> str:
    """Status, heartbeats and errors of one engine component."""
    return f"system.{_segment(component, 'component')}"


ERRORS = "system.errors"


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a well-formed topic pattern, else raise EventError."""
    if not isinstance(pattern, str) or not pattern:
        raise EventError(f"topic pattern must be a non-empty string, got {pattern!r}")
    parts = pattern.split(".")
    for i, part in enumerate(parts):
        if part in ("*",):
            continue
        if part in (">", "**"):
            if i != len(parts) - 1:
                raise EventError(f"topic pattern {pattern!r}: '{part}' must be the last segment")
            continue
        if not _SEGMENT.match(part):
            raise EventError(f"topic pattern {pattern!r} has invalid segment {part!r}")
    return pattern


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str] | None:
    validate_pattern(pattern)
    if "*" not in pattern and ">" not in pattern:
        return None
    out = []
    parts = pattern.split(".")
    for part in parts:
        if part == "*":
            out.append(r"[^.]+")
        elif part in (">", "**"):
            out.append(r"[^.]+(?:\.[^.]+)*")
        else:
            out.append(re.escape(part))
    return re.compile(r"\.".join(out) + r"\Z")


def matches(pattern: str, topic: str) -> bool:
    """True if ``topic`` matches ``pattern`` (exact, ``*`` one segment, ``>`` the rest)."""
    rx = _compile(pattern)
    if rx is None:
        return pattern == topic
    return rx.match(topic) is not None
