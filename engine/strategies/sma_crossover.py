"""Simple moving-average crossover: long when the fast average is above the slow one."""

from __future__ import annotations

from typing import Any

import param

from engine.strategies.rolling import RollingWindow
from engine.strategy import Strategy
from streams.events import BUY, SELL, BarReceived, TickReceived


class SmaCrossover(Strategy):
    """Buy ``qty`` when the fast SMA crosses above the slow SMA while flat; sell to flat when it
    crosses below while long. Never shorts. Acts on bar closes (or tick prices)."""

    fast = param.Integer(default=10, bounds=(1, None), doc="Bars in the fast average")
    slow = param.Integer(default=30, bounds=(2, None), doc="Bars in the slow average")
    qty = param.Number(
        default=100.0, bounds=(0, None), inclusive_bounds=(False, True), doc="Units per entry"
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        self._windows: dict[str, tuple[RollingWindow, RollingWindow]] = {}
        self._last_diff: dict[str, float] = {}
        # Plain copies for the per-bar path (a param attribute read costs far more), kept
        # current by a watcher when set_params changes them.
        self._lengths = (self.fast, self.slow)
        self.param.watch(self._cache_lengths, ["fast", "slow"])

    def _cache_lengths(self, *_events: Any) -> None:
        self._lengths = (self.fast, self.slow)

    def on_bar(self, bar: BarReceived) -> None:
        self._on_price(bar.symbol, bar.close)

    def on_tick(self, tick: TickReceived) -> None:
        self._on_price(tick.symbol, tick.price)

    def _on_price(self, symbol: str, price: float) -> None:
        windows = self._windows.get(symbol)
        lengths = self._lengths
        if windows is None or (windows[0].size, windows[1].size) != lengths:
            # first price, or fast/slow changed by set_params: averages of the new lengths
            windows = (RollingWindow(lengths[0]), RollingWindow(lengths[1]))
            self._windows[symbol] = windows
            self._last_diff.pop(symbol, None)
        fast, slow = windows
        fast.push(price)
        slow.push(price)
        if not slow.full:
            return
        diff = fast.mean - slow.mean
        previous = self._last_diff.get(symbol)
        self._last_diff[symbol] = diff
        if previous is None:
            return
        up = previous <= 0 < diff
        if not up and not previous >= 0 > diff:
            return  # no cross: nothing to decide, so no need to ask the context
        ctx = self.ctx
        if ctx.open_orders(symbol):
            return
        position = ctx.position(symbol)
        if up and position == 0:
            ctx.signal(
                symbol, BUY, reason=f"fast SMA {fast.mean:.4f} crossed above slow {slow.mean:.4f}"
            )
            ctx.submit_order(symbol, BUY, self.qty, reason="sma cross up")
        elif not up and position > 0:
            ctx.signal(
                symbol, SELL, reason=f"fast SMA {fast.mean:.4f} crossed below slow {slow.mean:.4f}"
            )
            ctx.submit_order(symbol, SELL, position, reason="sma cross down")
