"""Start-up reconciliation: make the engine's books agree with the broker's, the broker winning.

After a restore (snapshot + replay) the engine's positions are what its log says; the broker's
account is what really happened (it fills first and reports afterwards, and a person may have
traded by hand while the engine was down). :func:`reconcile` compares the two per symbol and
turns every difference into a ``reconciliation_adjusted`` event taking the broker's quantity and
average price; :func:`reconcile_cash` does the same for cash (a ``cash_adjusted`` with reason
``reconciliation``, so the equity matches the broker's too); :func:`reconcile_orders` finds
orders open on one side only. All three are pure.

:class:`Reconciler` reads the broker's account, publishes the differences (they are critical,
so they are in the log before anyone sees them) and cancels orders open on one side only. If the
account cannot be read it raises :class:`ReconciliationFailed`: the kernel then starts halted,
never trading on a position it could not confirm.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from engine.broker_account import BrokerAccount
from state.model import QTY_EPSILON
from streams.clock import Clock
from streams.errors import SeamlessError
from streams.events import (
    CashAdjusted,
    Event,
    OrderCancelled,
    ReconciliationAdjusted,
)

log = logging.getLogger(__name__)

#: Reason of the ``cash_adjusted`` that takes the broker's cash.
CASH_REASON = "reconciliation"
#: Relative difference of average prices below which two positions agree.
PRICE_TOLERANCE = 1e-9


class ReconciliationFailed(SeamlessError):
    """The broker's account could not be read, so the engine's positions cannot be confirmed."""


class AccountSource(Protocol):
    """Whatever holds the broker's account (the paper broker, later a real one)."""

    def account(self) -> BrokerAccount:
        """A snapshot of the broker's books; raises if they cannot be read."""
        ...

    def cancel(self, order_id: str, reason: str = "") -> bool:
        """Cancel a working order at the broker; False if it is not working."""
        ...


@dataclasses.dataclass(frozen=True)
class ReconciliationResult:
    """What one reconciliation found and published."""

    adjustments: tuple[ReconciliationAdjusted, ...]
    cash: CashAdjusted | None
    cancelled: tuple[OrderCancelled, ...]
    broker_only_orders: tuple[str, ...]

    @property
    def in_sync(self) -> bool:
        """True when the engine already agreed with the broker on everything."""
        return not (self.adjustments or self.cash or self.cancelled or self.broker_only_orders)

    @property
    def events(self) -> tuple[Event, ...]:
        """Every event published, in order."""
        cash: tuple[Event, ...] = (self.cash,) if self.cash is not None else ()
        return (*self.adjustments, *cash, *self.cancelled)


def reconcile(
    state: Mapping[str, Any], account: BrokerAccount, *, ts_event: int = 0
) -> list[ReconciliationAdjusted]:
    """One adjustment per symbol whose quantity or average price differs from the broker's."""
    engine_positions: Mapping[str, Any] = state["positions"]
    out = []
    for symbol in sorted(set(engine_positions) | set(account.positions)):
        pos = engine_positions.get(symbol)
        engine_qty = float(pos["qty"]) if pos is not None else 0.0
        engine_avg = float(pos["avg_price"]) if pos is not None else 0.0
        broker = account.positions.get(symbol)
        broker_qty = broker.qty if broker is not None else 0.0
        broker_avg = broker.avg_price if broker is not None else 0.0
        if abs(broker_qty) <= QTY_EPSILON:
            broker_qty, broker_avg = 0.0, 0.0
        if abs(engine_qty - broker_qty) > QTY_EPSILON:
            note = f"quantity differs: engine {engine_qty:g}, broker {broker_qty:g}"
        elif broker_qty and not _same_price(engine_avg, broker_avg):
            note = f"average price differs: engine {engine_avg:g}, broker {broker_avg:g}"
        else:
            continue
        out.append(
            ReconciliationAdjusted(
                symbol=symbol,
                engine_qty=engine_qty,
                broker_qty=broker_qty,
                broker_avg_price=broker_avg,
                note=f"{note}; taking the broker's",
                ts_event=ts_event,
            )
        )
    return out


def reconcile_cash(
    state: Mapping[str, Any],
    account: BrokerAccount,
    *,
    ts_event: int = 0,
    tolerance: float = 0.005,
) -> CashAdjusted | None:
    """A ``cash_adjusted`` bringing the engine's cash to the broker's, or None if they agree."""
    difference = account.cash - float(state["account"]["cash"])
    if abs(difference) <= tolerance:
        return None
    return CashAdjusted(amount=difference, reason=CASH_REASON, ts_event=ts_event)


def reconcile_orders(
    state: Mapping[str, Any], account: BrokerAccount
) -> tuple[list[str], list[str]]:
    """``(engine_only, broker_only)``: ids of orders open on one side but not the other."""
    engine_open = set(state["orders"])
    broker_open = set(account.open_orders)
    return sorted(engine_open - broker_open), sorted(broker_open - engine_open)


class Reconciler:
    """Reads the broker's account and publishes what makes the engine agree with it.

    Run it after the state is restored and before market data flows or trading starts: it
    reads the store and calls the broker, which otherwise only the engine thread touches.
    """

    def __init__(
        self,
        publish: Callable[[Event], None],
        store: Any,
        broker: AccountSource,
        clock: Clock | None = None,
        *,
        cash_tolerance: float = 0.005,
    ) -> None:
        self._publish = publish
        self._store = store
        self._broker = broker
        self._clock = clock
        self._cash_tolerance = cash_tolerance

    def run(self) -> ReconciliationResult:
        """Compare, publish the differences, cancel one-sided orders; raise if unreadable."""
        try:
            account = self._broker.account()
        except (SeamlessError, OSError, ValueError) as exc:
            raise ReconciliationFailed(f"cannot read the broker account: {exc}") from exc
        state = self._store.get_state()
        now = self._clock.now_ns() if self._clock is not None else 0
        adjustments = reconcile(state, account, ts_event=now)
        cash = reconcile_cash(state, account, ts_event=now, tolerance=self._cash_tolerance)
        engine_only, broker_only = reconcile_orders(state, account)
        cancelled = []
        for order_id in engine_only:
            order = state["orders"][order_id]
            cancelled.append(
                OrderCancelled(
                    order_id=order_id,
                    strategy=order["strategy"],
                    symbol=order["symbol"],
                    reason="reconciliation: not working at the broker",
                    ts_event=now,
                )
            )
        for event in (*adjustments, *((cash,) if cash else ()), *cancelled):
            log.warning("reconciliation: %s %s", event.type, event.payload())
            self._publish(event)
        for order_id in broker_only:
            log.warning("reconciliation: cancelling %s, unknown to the engine", order_id)
            self._broker.cancel(order_id, "reconciliation: unknown to the engine")
        return ReconciliationResult(
            adjustments=tuple(adjustments),
            cash=cash,
            cancelled=tuple(cancelled),
            broker_only_orders=tuple(broker_only),
        )


def _same_price(a: float, b: float) -> bool:
    return abs(a - b) <= PRICE_TOLERANCE * max(1.0, abs(a), abs(b))
