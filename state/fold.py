"""The fold: ``apply(state, event) -> state`` and ``replay(events, state) -> state``.

Pure: no I/O, no clock, no randomness; the same events give the same state on every run, which
is what makes restore (snapshot + replay of the tail) exact. Each event type maps to the
aggregate folds it drives (one module per aggregate); an event type with no rule only advances
``meta``. Every applied event sets ``meta.seq`` to its ``seq``, ``meta.ts`` to its ``ts_event``
and counts itself in ``meta.count``.

An event whose ``seq`` is positive and not above ``meta.seq`` is already in the state and is
skipped (the state is returned unchanged), so replaying a tail that overlaps a snapshot is safe.
Events not yet logged (``seq == 0``) are always applied and leave ``meta.seq`` as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from state import account, market, orders, positions, trading, values
from state.model import FrozenDict, State, initial_state
from streams.events import (
    BarReceived,
    CashAdjusted,
    DailyLossBreached,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    PnlUpdated,
    PositionClosed,
    PositionUpdated,
    ReconciliationAdjusted,
    RunnerStatusChanged,
    StateChanged,
    TickReceived,
    TradeExecuted,
    TradingStateChanged,
)

Handler = Callable[[State, Any], Mapping[str, Any]]
Touches = Callable[[Any], tuple[str, ...]]


def _symbol(section: str) -> Touches:
    return lambda e: (f"{section}.{e.symbol}",)


def _order(e: Any) -> tuple[str, ...]:
    return (f"orders.{e.order_id}",)


def _generic(e: StateChanged) -> tuple[str, ...]:
    if not values.is_generic_path(e.path):
        return ()
    return (".".join(e.path.split(".", 2)[:2]),)


#: event type -> (the aggregate folds it drives, the paths (depth <= 2) it may change)
_RULES: dict[type[Event], tuple[tuple[Handler, ...], Touches]] = {
    TickReceived: ((market.apply_tick,), _symbol("prices")),
    BarReceived: ((market.apply_bar,), _symbol("prices")),
    TradeExecuted: (
        (positions.apply_trade, orders.apply_trade),
        lambda e: (f"positions.{e.symbol}", "account", f"orders.{e.order_id}"),
    ),
    PositionUpdated: ((positions.apply_position_updated,), _symbol("positions")),
    PositionClosed: ((positions.apply_position_closed,), _symbol("positions")),
    ReconciliationAdjusted: ((positions.apply_reconciliation,), _symbol("positions")),
    CashAdjusted: ((account.apply_cash_adjusted,), lambda e: ("account",)),
    PnlUpdated: ((account.apply_pnl_updated,), lambda e: ("pnl",)),
    TradingStateChanged: ((trading.apply_trading_state_changed,), lambda e: ("trading",)),
    DailyLossBreached: ((trading.apply_daily_loss_breached,), lambda e: ("trading",)),
    RunnerStatusChanged: ((trading.apply_runner_status,), lambda e: (f"runner.{e.component}",)),
    OrderSubmitted: ((orders.apply_order_submitted,), _order),
    OrderAccepted: ((orders.apply_order_accepted,), _order),
    OrderRejected: ((orders.apply_order_done,), _order),
    OrderCancelled: ((orders.apply_order_done,), _order),
    StateChanged: ((values.apply_state_changed,), _generic),
}


def apply_traced(state: State, event: Event) -> tuple[State, tuple[str, ...]]:
    """``apply`` plus the paths (at most two segments deep) the event may have changed.

    The store uses the paths to bump per-path versions and notify subscribers; it checks each
    one against the previous state, so a listed path whose value did not change is no change.
    """
    meta = state["meta"]
    seq = event.seq
    if 0 < seq <= meta["seq"]:
        return state, ()
    rule = _RULES.get(type(event))
    touched: tuple[str, ...] = ()
    new = FrozenDict(state)
    if rule is not None:
        handlers, touches = rule
        for handler in handlers:
            dict.update(new, handler(state, event))
        touched = touches(event)
    dict.__setitem__(
        new,
        "meta",
        FrozenDict(
            seq=seq or meta["seq"],
            count=meta["count"] + 1,
            ts=event.ts_event,
            schema_version=meta["schema_version"],
        ),
    )
    return new, touched


def apply(state: State, event: Event) -> State:
    """The state after ``event``: pure, never raises for a well-formed event."""
    return apply_traced(state, event)[0]


def replay(events: Iterable[Event], state: State | None = None) -> State:
    """Fold ``events`` in order over ``state`` (default: :func:`initial_state`)."""
    current = initial_state() if state is None else state
    for event in events:
        current = apply_traced(current, event)[0]
    return current
