"""A seeded synthetic tick feed: geometric random walks with a bid/ask spread and trade sizes.

The same seed and arguments always give the same ticks (prices, sizes, timestamps), on any
machine: only :class:`random.Random` is used. Symbols take turns: tick ``i`` is for
``symbols[i % len(symbols)]`` at ``start_ns + i * step_ns``, so timestamps strictly increase
overall and per symbol.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from streams.clock import Clock
from streams.errors import ConfigError
from streams.events import TickReceived
from streams.sources.feed import FeedBase, Publish, Sleep
from streams.sources.validation import FieldRejected, MarketDataValidator, check_symbol_topic

_NS_PER_S = 1_000_000_000
DEFAULT_START_PRICE = 100.0


def synthetic_ticks(
    symbols: Sequence[str],
    seed: int,
    start_ns: int,
    step_ns: int = 1_000_000,
    *,
    count: int | None = None,
    start_prices: Mapping[str, float] | float = DEFAULT_START_PRICE,
    volatility: float = 0.0005,
    drift: float = 0.0,
    spread_bps: float = 2.0,
    tick_size: float = 0.01,
    max_lots: int = 10,
    lot_size: float = 100.0,
    source: str = "synthetic",
    clock: Clock | None = None,
) -> Iterator[TickReceived]:
    """Ticks from independent geometric random walks, one symbol after the other.

    Each tick moves its symbol's mid by ``exp(drift - volatility**2 / 2 + volatility * z)``
    (``z`` standard normal), quotes ``bid``/``ask`` around it ``spread_bps`` apart (at least
    one ``tick_size``), prints ``last`` at the bid or the ask and a size of 1..``max_lots``
    lots. ``count`` None = endless. ``clock`` stamps ``ts_init`` (default: the event time).
    ConfigError for invalid arguments.
    """
    try:
        names = [check_symbol_topic(s) for s in symbols] if symbols else []
    except FieldRejected as exc:
        raise ConfigError(
            f"synthetic_ticks symbol {exc.value!r} is invalid: {exc.detail}"
        ) from None
    if not names:
        raise ConfigError("synthetic_ticks needs at least one symbol")
    if len(set(names)) != len(names):
        raise ConfigError(f"synthetic_ticks symbols must be distinct, got {list(symbols)}")
    _positive("step_ns", step_ns)
    _positive("tick_size", tick_size)
    _positive("lot_size", lot_size)
    _positive("max_lots", max_lots)
    if volatility < 0 or spread_bps < 0:
        raise ConfigError(
            f"volatility and spread_bps must be >= 0, got {volatility!r}, {spread_bps!r}"
        )
    if count is not None and count < 0:
        raise ConfigError(f"count must be >= 0 or None, got {count!r}")
    mids = {s: _start_price(start_prices, s) for s in names}
    decimals = max(0, -Decimal(str(tick_size)).as_tuple().exponent)  # type: ignore[operator]
    rng = random.Random(seed)
    steps: Iterable[int] = range(count) if count is not None else itertools.count()
    for i in steps:
        symbol = names[i % len(names)]
        mid = mids[symbol] * math.exp(drift - volatility**2 / 2 + volatility * rng.gauss(0.0, 1.0))
        mid = max(mid, 2 * tick_size)
        mids[symbol] = mid
        half = max(mid * spread_bps / 20_000.0, tick_size / 2)
        bid = round(math.floor((mid - half) / tick_size + 1e-9) * tick_size, decimals)
        ask = round(math.ceil((mid + half) / tick_size - 1e-9) * tick_size, decimals)
        bid = max(bid, round(tick_size, decimals))
        if ask <= bid:
            ask = round(bid + tick_size, decimals)
        last = ask if rng.random() < 0.5 else bid
        size = rng.randint(1, max_lots) * lot_size
        ts = start_ns + i * step_ns
        yield TickReceived(
            symbol=symbol,
            bid=bid,
            ask=ask,
            last=last,
            size=size,
            source=source,
            ts_event=ts,
            ts_init=clock.now_ns() if clock is not None else ts,
        )


class SyntheticFeed(FeedBase):
    """:func:`synthetic_ticks` in its own thread at ``rate`` ticks per second (0 = max).

    ``start_ns`` defaults to the clock's time at start; ``step_ns`` defaults to one tick
    interval at ``rate`` (1 ms when rate is 0), so event time follows wall time at that rate.
    ``count`` None = endless. ``position`` counts ticks emitted; ``total`` is ``count``.
    Extra keyword arguments go to :func:`synthetic_ticks`.
    """

    def __init__(
        self,
        publish: Publish,
        clock: Clock | None,
        symbols: Sequence[str],
        *,
        seed: int = 0,
        rate: float = 10.0,
        start_ns: int | None = None,
        step_ns: int | None = None,
        count: int | None = None,
        source: str = "synthetic",
        name: str | None = None,
        known_symbols: Iterable[str] | None = None,
        validator: MarketDataValidator | None = None,
        sleep: Sleep | None = None,
        monotonic: Callable[[], float] | None = None,
        max_sleep_s: float = 0.25,
        **walk: Any,
    ) -> None:
        if not rate >= 0 or math.isinf(rate):
            raise ConfigError(f"rate must be >= 0 ticks/s (0 = as fast as possible), got {rate!r}")
        self.step_ns = step_ns or (round(_NS_PER_S / rate) if rate else 1_000_000)
        _positive("step_ns", self.step_ns)
        super().__init__(
            publish,
            clock,
            name=name or source,
            source=source,
            known_symbols=known_symbols,
            validator=validator,
            speed=self._speed_for(rate),
            sleep=sleep,
            monotonic=monotonic,
            max_sleep_s=max_sleep_s,
        )
        self.symbols = list(symbols)
        self.seed = seed
        self.start_ns = start_ns
        self.count = count
        self.position = 0
        self._walk = walk
        # Build one tick now so bad arguments fail here, not in the thread.
        next(synthetic_ticks(self.symbols, seed, 0, self.step_ns, count=1, **walk), None)

    @property
    def total(self) -> int | None:
        """Ticks this feed will emit, or None when endless."""
        return self.count

    @property
    def rate(self) -> float:
        """Ticks per second (0 = as fast as possible)."""
        speed = self.speed
        return 0.0 if speed is None else speed * _NS_PER_S / self.step_ns

    def set_rate(self, rate: float) -> None:
        """Change the tick rate while running (0 = as fast as possible)."""
        if not rate >= 0 or math.isinf(rate):
            raise ConfigError(f"rate must be >= 0 ticks/s (0 = as fast as possible), got {rate!r}")
        self.set_speed(self._speed_for(rate))

    def _speed_for(self, rate: float) -> float | None:
        # Pacing runs on event time: one step_ns of event time per 1/rate seconds.
        return rate * self.step_ns / _NS_PER_S if rate else None

    def _run(self) -> None:
        start = self.start_ns if self.start_ns is not None else self.clock.now_ns()
        ticks = synthetic_ticks(
            self.symbols,
            self.seed,
            start,
            self.step_ns,
            count=self.count,
            source=self.source,
            clock=self.clock,
            **self._walk,
        )
        for tick in ticks:
            if not self._pace(tick.ts_event):
                return
            self._emit(tick)
            self.position += 1


def _start_price(prices: Mapping[str, float] | float, symbol: str) -> float:
    value = prices.get(symbol, DEFAULT_START_PRICE) if isinstance(prices, Mapping) else prices
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"start price of {symbol} must be a finite number > 0, got {value!r}")
    return float(value)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
