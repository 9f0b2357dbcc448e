"""Positions as the engine reports them: ``position_updated``/``position_closed`` and round trips.

The position math itself is the positions fold (:func:`state.fold.fill_position`, average
cost, long and short, flips through zero): by the time a subscriber sees a ``trade_executed``
the store has already folded it. :class:`Portfolio` reads that result and states it on
``positions.{symbol}``: a ``position_updated`` after every fill or reconciliation, and a
``position_closed`` when the quantity is back to zero. It also records completed round trips
(flat -> open -> flat, a flip closing one and opening the next) for reports and backtests.

Runs on the engine thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from reactivex import abc

from engine.core import only
from state.model import QTY_EPSILON
from streams import topics
from streams.bus import EventBus
from streams.clock import Clock
from streams.events import (
    Event,
    PositionClosed,
    PositionUpdated,
    ReconciliationAdjusted,
    TradeExecuted,
)


@dataclasses.dataclass(frozen=True, slots=True)
class RoundTrip:
    """A position opened from flat and closed back to flat (or through zero).

    ``realized_pnl`` is gross (price moves only); ``commissions`` are the fills' costs, a flip's
    commission split between the trip it closes and the one it opens by quantity.
    ``opened_ns`` is 0 for a trip that was already open when this portfolio attached (after a
    restart); such a trip counts only what was realized after that.
    """

    symbol: str
    side: str
    opened_ns: int
    closed_ns: int
    max_qty: float
    realized_pnl: float
    commissions: float
    fills: int

    @property
    def net_pnl(self) -> float:
        """Realized P&L after commissions."""
        return self.realized_pnl - self.commissions


@dataclasses.dataclass(slots=True)
class _OpenTrip:
    side: str
    opened_ns: int
    realized_base: float
    max_qty: float
    commissions: float = 0.0
    fills: int = 0


class Portfolio:
    """Publishes the engine's positions after each change and keeps the round trips."""

    def __init__(self, publish: Callable[[Event], None], store: Any, clock: Clock) -> None:
        self._publish = publish
        self._store = store
        self._clock = clock
        self._open: dict[str, _OpenTrip] = {}
        self.round_trips: list[RoundTrip] = []

    def attach(self, bus: EventBus) -> list[abc.DisposableBase]:
        """Follow fills and reconciliation adjustments (attach after the state is restored)."""
        self.resync()
        return [
            bus.subscribe(
                topics.ALL_FILLS, only(TradeExecuted, self.on_fill), name="portfolio.fills"
            ),
            bus.subscribe(
                topics.RECONCILIATION,
                only(ReconciliationAdjusted, self.on_reconciled),
                name="portfolio.recon",
            ),
        ]

    def resync(self) -> None:
        """Take positions already open in the state as open trips (after a restore)."""
        self._open.clear()
        for symbol, pos in self._store.get_state("positions", {}).items():
            qty = pos["qty"]
            if abs(qty) > QTY_EPSILON:
                self._open[symbol] = _OpenTrip(
                    side="long" if qty > 0 else "short",
                    opened_ns=0,
                    realized_base=pos["realized_pnl"],
                    max_qty=abs(qty),
                )

    def position(self, symbol: str) -> dict[str, float]:
        """The position in ``symbol`` as ``{qty, avg_price, realized_pnl}`` (flat if none)."""
        pos = self._store.get_state(f"positions.{symbol}", None)
        if pos is None:
            return {"qty": 0.0, "avg_price": 0.0, "realized_pnl": 0.0}
        return dict(pos)

    # -- handlers -----------------------------------------------------------------------------
    def on_fill(self, fill: TradeExecuted) -> None:
        """State the position after ``fill`` (already folded into the store) and track trips."""
        pos = self._store.get_state(f"positions.{fill.symbol}", None)
        if pos is None:
            return
        self._track(fill, pos["qty"], pos["realized_pnl"])
        self._state_position(fill.symbol, pos, fill)

    def on_reconciled(self, event: ReconciliationAdjusted) -> None:
        """State the position the broker's truth gave (already folded into the store)."""
        pos = self._store.get_state(f"positions.{event.symbol}", None)
        if pos is None:
            return
        if abs(pos["qty"]) <= QTY_EPSILON:
            self._open.pop(event.symbol, None)
        elif event.symbol not in self._open:
            self._open[event.symbol] = _OpenTrip(
                side="long" if pos["qty"] > 0 else "short",
                opened_ns=event.ts_event,
                realized_base=pos["realized_pnl"],
                max_qty=abs(pos["qty"]),
            )
        self._state_position(event.symbol, pos, event)

    # -- internals ----------------------------------------------------------------------------
    def _state_position(self, symbol: str, pos: Any, cause: Event) -> None:
        qty = pos["qty"]
        common: dict[str, Any] = {
            "ts_event": self._clock.now_ns(),
            "causation_id": cause.event_id,
            "correlation_id": cause.correlation_id,
        }
        self._publish(
            PositionUpdated(
                symbol=symbol,
                qty=qty,
                avg_price=pos["avg_price"],
                realized_pnl=pos["realized_pnl"],
                **common,
            )
        )
        if abs(qty) <= QTY_EPSILON:
            self._publish(PositionClosed(symbol=symbol, realized_pnl=pos["realized_pnl"], **common))

    def _track(self, fill: TradeExecuted, qty_after: float, realized_after: float) -> None:
        symbol = fill.symbol
        trip = self._open.get(symbol)
        qty_before = qty_after - fill.signed_qty
        opening_part = fill.qty
        if trip is not None:
            closing = abs(qty_before) > QTY_EPSILON and (qty_before > 0) != (fill.signed_qty > 0)
            flipped = (
                closing and abs(qty_after) > QTY_EPSILON and (qty_after > 0) != (qty_before > 0)
            )
            share = 1.0
            if flipped:
                share = abs(qty_before) / fill.qty
            trip.commissions += fill.commission * share
            trip.fills += 1
            if abs(qty_after) <= QTY_EPSILON or flipped:
                self.round_trips.append(
                    RoundTrip(
                        symbol=symbol,
                        side=trip.side,
                        opened_ns=trip.opened_ns,
                        closed_ns=fill.ts_event,
                        max_qty=trip.max_qty,
                        realized_pnl=realized_after - trip.realized_base,
                        commissions=trip.commissions,
                        fills=trip.fills,
                    )
                )
                del self._open[symbol]
                if not flipped:
                    return
                opening_part = abs(qty_after)
            else:
                trip.max_qty = max(trip.max_qty, abs(qty_after))
                return
        if abs(qty_after) <= QTY_EPSILON:
            return
        self._open[symbol] = _OpenTrip(
            side="long" if qty_after > 0 else "short",
            opened_ns=fill.ts_event,
            realized_base=realized_after,
            max_qty=abs(qty_after),
            commissions=fill.commission * opening_part / fill.qty,
            fills=1,
        )
