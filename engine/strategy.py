"""The strategy API: what a strategy author writes, and the context it is given.

A strategy is a ``param.Parameterized`` subclass, so its parameters are declared once and the
dashboard can render and edit them. It reacts to market data in ``on_bar``/``on_tick`` and to
its own executions in ``on_fill``, and acts only through its :class:`StrategyContext`: the
clock, its positions, order submission and signals. The same class runs live, in backtests and
in notebooks, because the context hides which of those it is.

Strategies run on the engine thread. A strategy that raises is disabled and reported; the
engine and other strategies go on (see :mod:`engine.strategy_host`).
"""

from __future__ import annotations

from typing import Any, Protocol

import param

from streams.clock import Clock
from streams.events import BarReceived, TickReceived, TradeExecuted


class StrategyContext(Protocol):
    """What a running strategy may see and do."""

    @property
    def clock(self) -> Clock:
        """The engine clock (virtual time in backtests)."""
        ...

    def position(self, symbol: str) -> float:
        """This engine's signed position in ``symbol`` (0.0 when flat)."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """This strategy's orders that are submitted but not yet filled, rejected or cancelled."""
        ...

    def submit_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        *,
        order_type: str = "market",
        limit_price: float | None = None,
        stop_price: float | None = None,
        reason: str = "",
    ) -> str:
        """Ask for an order (it still passes risk checks); returns its order id.

        ``order_type`` is ``market``, ``limit`` (needs ``limit_price``), ``stop`` (needs
        ``stop_price``) or ``stop_limit`` (needs both); the fill rules are in
        :mod:`engine.fill_rules`."""
        ...

    def cancel_order(self, order_id: str, reason: str = "") -> None:
        """Ask the broker to cancel an open order."""
        ...

    def signal(self, symbol: str, side: str, *, strength: float = 1.0, reason: str = "") -> None:
        """Publish a ``signal_detected`` event (for the dashboard and the audit log)."""
        ...


class Strategy(param.Parameterized):
    """Base class of every strategy. Override the ``on_*`` hooks you need.

    ``name`` (from param) identifies the strategy in topics, orders and the dashboard;
    ``symbols`` lists what it trades.
    """

    symbols = param.List(default=[], item_type=str, doc="Symbols this strategy trades")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._ctx: StrategyContext | None = None

    @property
    def ctx(self) -> StrategyContext:
        """The context given in ``on_start``; using it earlier is a programming error."""
        if self._ctx is None:
            raise RuntimeError(f"strategy {self.name!r} used its context before on_start")
        return self._ctx

    def on_start(self, ctx: StrategyContext) -> None:
        """Called once before any data; keep the context. Override to warm up, then call super."""
        self._ctx = ctx

    def on_bar(self, bar: BarReceived) -> None:
        """A new bar for one of ``symbols``."""

    def on_tick(self, tick: TickReceived) -> None:
        """A new tick for one of ``symbols``."""

    def on_fill(self, fill: TradeExecuted) -> None:
        """One of this strategy's orders was (partly) filled."""

    def on_stop(self) -> None:
        """Called once when the strategy is stopped or the engine shuts down."""

    def parameters(self) -> dict[str, Any]:
        """The current values of this strategy's own parameters (not ``name``)."""
        return {k: v for k, v in self.param.values().items() if k != "name"}
