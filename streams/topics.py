"""The one place topic names are built, and wildcard matching over them.

Topics are dotted lowercase names. Patterns may use ``*`` for exactly one segment and a
trailing ``>`` (or ``**``) for one or more trailing segments, as in NATS subjects: ``fills.*``
matches ``fills.sma``; ``data.>`` matches ``data.ticks.aapl``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from streams.errors import EventError

_SEGMENT = re.compile(r"^[a-z0-9_\-]+$")


@lru_cache(maxsize=8192)
def _segment(value: str, what: str) -> str:
    seg = value.strip().lower().replace(".", "_").replace(" ", "_")
    if not seg or not _SEGMENT.match(seg):
        raise EventError(f"topic segment {what!r} has invalid value {value!r}")
    return seg


def _family(prefix: str, what: str, doc: str, name: str) -> Callable[[str], str]:
    """The builder of one topic family: ``<prefix>.<what>``, the segment checked and normalized.

    Every family is one line of the table below, so they cannot drift apart.
    """

    def build(value: str) -> str:
        return f"{prefix}.{_segment(value, what)}"

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return build


ticks = _family("data.ticks", "symbol", "Quote/trade ticks for one symbol.", "ticks")
bars = _family("data.bars", "symbol", "OHLCV bars for one symbol.", "bars")
market_data = _family(
    "data.*",
    "symbol",
    "The pattern of one symbol's market data, bars and ticks (``data.*.<symbol>``).",
    "market_data",
)
data_rejected = _family(
    "data.rejected", "source", "Market data refused at the edge, per source.", "data_rejected"
)
data_dropped = _family(
    "data.dropped",
    "source",
    "Market data a live feed had to drop (the engine fell behind), per source.",
    "data_dropped",
)
signals = _family("signals", "strategy", "Signals detected by one strategy.", "signals")
orders = _family("orders", "strategy", "Order lifecycle events of one strategy.", "orders")
fills = _family("fills", "strategy", "Executions (trade_executed) of one strategy.", "fills")
positions = _family("positions", "symbol", "Position changes for one symbol.", "positions")
system = _family(
    "system", "component", "Status, heartbeats and errors of one engine component.", "system"
)


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
