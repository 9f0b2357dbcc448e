"""Market-data events: ticks, bars, data refused at the edge, and data a live feed had to drop.

Ticks, bars and rejections are not critical (written in batches). ``data_dropped`` is: losing
market data is a fact the audit trail must keep, and dashboards show it at once."""

from __future__ import annotations

import dataclasses

from streams import topics
from streams.events.base import Event


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TickReceived(Event):
    """A quote and/or trade tick. ``price`` is last trade, else the mid of bid/ask."""

    TYPE = "tick"
    CONFLATED = True

    symbol: str
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    size: float = 0.0
    source: str = ""

    def default_topic(self) -> str:
        return topics.ticks(self.symbol)

    @property
    def price(self) -> float:
        """The best single price of this tick: last trade, else mid, else whichever side exists."""
        if self.last is not None:
            return self.last
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2.0
        side = self.bid if self.bid is not None else self.ask
        if side is None:
            raise ValueError(f"tick for {self.symbol} has no price")
        return side


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class BarReceived(Event):
    """An OHLCV bar; ``ts_event`` is the bar's close time."""

    TYPE = "bar"
    CONFLATED = True

    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    interval_s: int = 60
    source: str = ""

    def default_topic(self) -> str:
        return topics.bars(self.symbol)

    @property
    def price(self) -> float:
        """The bar's close, the price positions are marked to."""
        return self.close


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DataRejected(Event):
    """Market data refused at the edge; names the field, the value and why."""

    TYPE = "data_rejected"

    source: str
    symbol: str
    field: str
    value: str
    reason: str

    def default_topic(self) -> str:
        return topics.data_rejected(self.source or "unknown")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DataDropped(Event):
    """Market data a live feed could not hand to the engine because its inbox was full.

    ``count`` events were dropped since the previous report (``by_symbol`` splits them),
    ``total`` since the feed started. Replay feeds never drop: they wait (back-pressure).
    """

    TYPE = "data_dropped"
    CRITICAL = True

    source: str
    count: int
    total: int
    by_symbol: dict[str, int] = dataclasses.field(default_factory=dict)

    def default_topic(self) -> str:
        return topics.data_dropped(self.source or "unknown")
