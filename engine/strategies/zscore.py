"""Z-score mean reversion: fade moves that stretch far from the rolling mean."""

from __future__ import annotations

from typing import Any

import param

from engine.strategies.rolling import RollingWindow
from engine.strategy import Strategy
from streams.events import BUY, SELL, BarReceived, TickReceived


class ZScoreReversion(Strategy):
    """z = (price - mean) / std over ``window`` prices. Flat: buy below ``-entry_z``, short above
    ``entry_z``. Long: exit once z is back above ``-exit_z``; short: exit once below ``exit_z``."""

    window = param.Integer(default=20, bounds=(2, None), doc="Prices in the rolling window")
    entry_z = param.Number(default=2.0, bounds=(0, None), doc="|z| that opens a position")
    exit_z = param.Number(default=0.5, bounds=(0, None), doc="|z| at which a position is closed")
    qty = param.Number(
        default=100.0, bounds=(0, None), inclusive_bounds=(False, True), doc="Units per entry"
    )
    allow_short = param.Boolean(default=True, doc="Open short positions on high z")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.exit_z > self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must not exceed entry_z ({self.entry_z})")
        self._windows: dict[str, RollingWindow] = {}

    def on_bar(self, bar: BarReceived) -> None:
        self._on_price(bar.symbol, bar.close)

    def on_tick(self, tick: TickReceived) -> None:
        self._on_price(tick.symbol, tick.price)

    def _on_price(self, symbol: str, price: float) -> None:
        window = self._windows.get(symbol)
        if window is None or window.size != self.window:  # first price, or window changed
            window = self._windows[symbol] = RollingWindow(self.window)
        window.push(price)
        if not window.full or window.std == 0:
            return
        z = (price - window.mean) / window.std
        ctx = self.ctx
        if ctx.open_orders(symbol):
            return
        position = ctx.position(symbol)
        if position == 0:
            if z < -self.entry_z:
                ctx.signal(symbol, BUY, strength=-z, reason=f"z={z:.2f} below -{self.entry_z}")
                ctx.submit_order(symbol, BUY, self.qty, reason="z-score entry long")
            elif z > self.entry_z and self.allow_short:
                ctx.signal(symbol, SELL, strength=z, reason=f"z={z:.2f} above {self.entry_z}")
                ctx.submit_order(symbol, SELL, self.qty, reason="z-score entry short")
        elif position > 0 and z >= -self.exit_z:
            ctx.submit_order(symbol, SELL, position, reason=f"z-score exit long at z={z:.2f}")
        elif position < 0 and z <= self.exit_z:
            ctx.submit_order(symbol, BUY, -position, reason=f"z-score exit short at z={z:.2f}")
