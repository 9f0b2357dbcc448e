"""``hold_once``: buys ``qty`` of each of its symbols on the first bar and holds it."""

from __future__ import annotations

import param

from engine import BUY, BarReceived, Strategy, StrategyContext


class HoldOnce(Strategy):
    """Buys ``qty`` on the first bar of each symbol and holds it (a buy-and-hold baseline)."""

    qty = param.Number(default=5.0, bounds=(0, None), inclusive_bounds=(False, True))

    def on_start(self, ctx: StrategyContext) -> None:
        super().on_start(ctx)
        self._bought: set[str] = set()

    def on_bar(self, bar: BarReceived) -> None:
        if bar.symbol not in self._bought:
            self._bought.add(bar.symbol)
            self.ctx.submit_order(bar.symbol, BUY, self.qty, reason="hold once")
