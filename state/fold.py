"""The fold: ``apply(state, event) -> state``, ``replay(events, state) -> state`` and the
per-aggregate rules they follow.

Pure: no I/O, no clock, no randomness; the same events give the same state on every run, which
is what makes restore (snapshot + replay of the tail) exact. Each event type maps to one fold
(:data:`_RULES`) that returns the sections it changes, and to the paths it may change; an event
type with no rule only advances ``meta``. Every applied event sets ``meta.seq`` to its ``seq``,
``meta.ts`` to its ``ts_event`` and counts itself in ``meta.count``.

An event whose ``seq`` is positive and not above ``meta.seq`` is already in the state and is
skipped (the state is returned unchanged), so replaying a tail that overlaps a snapshot is safe.
Events not yet logged (``seq == 0``) are always applied and leave ``meta.seq`` as it was.

The aggregates, in the order below:

* market: ``prices[symbol]`` is ``{last, bid, ask, ts}``; ``last`` is the price positions are
  marked to (a tick's :attr:`~streams.events.TickReceived.price`, a bar's close); a quote side
  missing from a tick keeps its previous value.
* positions and account: a position is ``{qty, avg_price, realized_pnl}`` with a signed ``qty``
  (short < 0). Fills follow average cost: adding to a position moves the average; reducing
  realizes P&L on the closed part at ``(price - avg_price) * closed_qty`` (sign flipped for a
  short) and leaves the average alone; a fill through zero realizes the whole old position and
  opens the remainder at the fill price. Commissions are not part of realized P&L here; the
  account carries them.
* orders: ``orders[order_id]`` holds the open orders only: an order enters on submission and is
  removed when rejected, cancelled or completely filled (``leaves_qty`` 0 on a fill). Events for
  an order that is not open (e.g. a late acceptance after a cancel) change nothing.
* trading and runner: active/halted/reducing, and each component's status.
* generic values: ``StateChanged`` sets the value at any dotted path outside the domain
  sections (:data:`~state.model.DOMAIN_SECTIONS`), in the same tree, so ``get_state`` reads it
  the same way. A ``StateChanged`` under a domain section is ignored here and refused earlier
  by ``StateStore.update_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from state.model import (
    DOMAIN_SECTIONS,
    EMPTY,
    QTY_EPSILON,
    FrozenDict,
    State,
    assoc,
    assoc_in,
    dissoc,
    empty_position,
    freeze,
    initial_state,
    merge,
)
from streams import events as ev

Handler = Callable[[State, Any], Mapping[str, Any]]
Touches = Callable[[Any], tuple[str, ...]]

SUBMITTED = "submitted"
ACCEPTED = "accepted"
PARTIALLY_FILLED = "partially_filled"


# -- market ---------------------------------------------------------------------------------
def apply_tick(state: State, event: ev.TickReceived) -> dict[str, Any]:
    """Record the tick's price and quote; a tick without any price changes nothing."""
    bid, ask, last = event.bid, event.ask, event.last
    if last is not None:
        price = last
    elif bid is not None and ask is not None:
        price = (bid + ask) / 2.0
    elif bid is not None or ask is not None:
        price = bid if bid is not None else ask  # type: ignore[assignment]
    else:
        return {}
    prices = state["prices"]
    old = prices.get(event.symbol)
    if old is not None:
        if bid is None:
            bid = old["bid"]
        if ask is None:
            ask = old["ask"]
    quote = FrozenDict(last=price, bid=bid, ask=ask, ts=event.ts_event)
    return {"prices": assoc(prices, event.symbol, quote)}


def apply_bar(state: State, event: ev.BarReceived) -> dict[str, Any]:
    """Mark the symbol at the bar's close; the quote sides are kept."""
    prices = state["prices"]
    old = prices.get(event.symbol)
    bid = old["bid"] if old is not None else None
    ask = old["ask"] if old is not None else None
    quote = FrozenDict(last=event.close, bid=bid, ask=ask, ts=event.ts_event)
    return {"prices": assoc(prices, event.symbol, quote)}


# -- positions and account ------------------------------------------------------------------
def fill_position(
    position: FrozenDict | None, signed_qty: float, price: float
) -> tuple[FrozenDict, float]:
    """The position after a fill of ``signed_qty`` (buy > 0) at ``price``, and the P&L realized."""
    pos = position if position is not None else empty_position()
    qty: float = pos["qty"]
    avg: float = pos["avg_price"]
    realized: float = pos["realized_pnl"]
    new_qty = qty + signed_qty
    if abs(new_qty) < QTY_EPSILON:
        new_qty = 0.0
    gained = 0.0
    if qty == 0.0 or (qty > 0) == (signed_qty > 0):
        new_avg = (qty * avg + signed_qty * price) / new_qty if new_qty else 0.0
    else:
        closed = min(abs(signed_qty), abs(qty))
        gained = closed * (price - avg) if qty > 0 else closed * (avg - price)
        if new_qty == 0.0:
            new_avg = 0.0
        elif (new_qty > 0) == (qty > 0):
            new_avg = avg
        else:
            new_avg = price
    new_pos = FrozenDict(qty=new_qty, avg_price=new_avg, realized_pnl=realized + gained)
    return new_pos, gained


def apply_trade(state: State, event: ev.TradeExecuted) -> dict[str, Any]:
    """A fill: the position moves, the account pays for it and the order's open qty shrinks."""
    positions = state["positions"]
    new_pos, gained = fill_position(positions.get(event.symbol), event.signed_qty, event.price)
    account = state["account"]
    new_account = FrozenDict(account)
    dict.update(
        new_account,
        cash=account["cash"] - event.signed_qty * event.price - event.commission,
        commissions=account["commissions"] + event.commission,
        realized_pnl=account["realized_pnl"] + gained,
    )
    changes = {"positions": assoc(positions, event.symbol, new_pos), "account": new_account}
    return changes | _fill_order(state["orders"], event)


def apply_position_notice(
    state: State, event: ev.PositionUpdated | ev.PositionClosed
) -> dict[str, Any]:
    """A notification derived from the state after a fill: it changes nothing.

    Positions move only with fills and reconciliation. Setting them from ``PositionUpdated`` or
    ``PositionClosed`` would wind a position back when two fills of one symbol are applied
    before their notifications."""
    return {}


def apply_reconciliation(state: State, event: ev.ReconciliationAdjusted) -> dict[str, Any]:
    """Take the broker's quantity and average price; the realized P&L history is kept."""
    old = state["positions"].get(event.symbol) or empty_position()
    qty = float(event.broker_qty)
    pos = FrozenDict(
        qty=qty,
        avg_price=float(event.broker_avg_price) if qty else 0.0,
        realized_pnl=old["realized_pnl"],
    )
    return {"positions": assoc(state["positions"], event.symbol, pos)}


def apply_cash_adjusted(state: State, event: ev.CashAdjusted) -> dict[str, Any]:
    """Add ``amount`` (negative takes cash away) to the account's cash (cash moved by fills is
    folded in :func:`apply_trade`)."""
    account = state["account"]
    return {"account": assoc(account, "cash", account["cash"] + event.amount)}


def apply_pnl_updated(state: State, event: ev.PnlUpdated) -> dict[str, Any]:
    """Replace the P&L figures (and the session they are measured from) with the carried ones."""
    return {
        "pnl": FrozenDict(
            realized=float(event.realized),
            unrealized=float(event.unrealized),
            daily=float(event.daily),
            equity=float(event.equity),
            drawdown=float(event.drawdown),
            max_drawdown=float(event.max_drawdown),
            session_start=int(event.session_start),
        )
    }


# -- orders ---------------------------------------------------------------------------------
def apply_order_submitted(state: State, event: ev.OrderSubmitted) -> dict[str, Any]:
    """A new open order, nothing filled yet."""
    extra = {"stop_price": event.stop_price} if event.stop_price is not None else {}
    order = FrozenDict(
        **extra,
        order_id=event.order_id,
        strategy=event.strategy,
        symbol=event.symbol,
        side=event.side,
        qty=float(event.qty),
        filled_qty=0.0,
        leaves_qty=float(event.qty),
        order_type=event.order_type,
        limit_price=event.limit_price,
        status=SUBMITTED,
        ts=event.ts_event,
    )
    return {"orders": assoc(state["orders"], event.order_id, order)}


def apply_order_accepted(state: State, event: ev.OrderAccepted) -> dict[str, Any]:
    """The open order is now working at the broker."""
    orders = state["orders"]
    order = orders.get(event.order_id)
    if order is None or order["status"] != SUBMITTED:
        return {}
    return {"orders": assoc(orders, event.order_id, assoc(order, "status", ACCEPTED))}


def apply_order_done(state: State, event: ev.OrderRejected | ev.OrderCancelled) -> dict[str, Any]:
    """A rejected or cancelled order is no longer open."""
    orders = state["orders"]
    if event.order_id not in orders:
        return {}
    return {"orders": dissoc(orders, event.order_id)}


def _fill_order(orders: FrozenDict, event: ev.TradeExecuted) -> dict[str, Any]:
    """A fill reduces the order's open quantity; a complete fill closes it."""
    order = orders.get(event.order_id)
    if order is None:
        return {}
    if event.leaves_qty <= 0.0:
        return {"orders": dissoc(orders, event.order_id)}
    changed = merge(
        order,
        {
            "filled_qty": order["filled_qty"] + event.qty,
            "leaves_qty": float(event.leaves_qty),
            "status": PARTIALLY_FILLED,
        },
    )
    return {"orders": assoc(orders, event.order_id, changed)}


# -- trading and runner ---------------------------------------------------------------------
def apply_trading_state_changed(state: State, event: ev.TradingStateChanged) -> dict[str, Any]:
    """Trading takes the carried state; who decided and why are kept next to it."""
    return {
        "trading": FrozenDict(
            state=event.state, reason=event.reason, actor=event.actor, ts=event.ts_event
        )
    }


def breach_state(action: str) -> str:
    """The trading state after a daily-loss breach: reducing if ``action`` says so, else halted."""
    # "reduce", "reducing", "reduce_only" all mean the same to an operator.
    return ev.REDUCING if "reduc" in action.lower() else ev.HALTED


def apply_daily_loss_breached(state: State, event: ev.DailyLossBreached) -> dict[str, Any]:
    """A daily-loss breach halts trading (or makes it reduce-only when ``action`` says so)."""
    reason = (
        f"daily loss breached: daily P&L {event.daily_pnl:g} below limit {event.limit:g}"
        f" ({event.action})"
    )
    return {
        "trading": FrozenDict(
            state=breach_state(event.action), reason=reason, actor="risk", ts=event.ts_event
        )
    }


def apply_runner_status(state: State, event: ev.RunnerStatusChanged) -> dict[str, Any]:
    """Set ``runner[component]`` to the new status."""
    return {"runner": assoc(state["runner"], event.component, event.status)}


# -- generic values -------------------------------------------------------------------------
def is_generic_path(path: str) -> bool:
    """True if ``path`` is well formed and outside the domain sections (writable by actors)."""
    if not path:
        return False
    segments = path.split(".")
    if any(not seg or seg == "*" for seg in segments):
        return False
    return segments[0] not in DOMAIN_SECTIONS


def apply_state_changed(state: State, event: ev.StateChanged) -> dict[str, Any]:
    """Set ``event.value`` (frozen) at ``event.path``; missing parents are created."""
    if not is_generic_path(event.path):
        return {}
    segments = event.path.split(".")
    head = segments[0]
    value = freeze(event.value)
    if len(segments) == 1:
        return {head: value}
    parent = state.get(head)
    return {head: assoc_in(parent if isinstance(parent, dict) else EMPTY, segments[1:], value)}


# -- the rules and the fold -----------------------------------------------------------------
def _symbol(section: str) -> Touches:
    return lambda e: (f"{section}.{e.symbol}",)


def _order(e: Any) -> tuple[str, ...]:
    return (f"orders.{e.order_id}",)


def _generic(e: ev.StateChanged) -> tuple[str, ...]:
    if not is_generic_path(e.path):
        return ()
    return (".".join(e.path.split(".", 2)[:2]),)


#: event type -> (its fold, the paths (depth <= 2) it may change)
_RULES: dict[type[ev.Event], tuple[Handler, Touches]] = {
    ev.TickReceived: (apply_tick, _symbol("prices")),
    ev.BarReceived: (apply_bar, _symbol("prices")),
    ev.TradeExecuted: (
        apply_trade,
        lambda e: (f"positions.{e.symbol}", "account", f"orders.{e.order_id}"),
    ),
    ev.PositionUpdated: (apply_position_notice, _symbol("positions")),
    ev.PositionClosed: (apply_position_notice, _symbol("positions")),
    ev.ReconciliationAdjusted: (apply_reconciliation, _symbol("positions")),
    ev.CashAdjusted: (apply_cash_adjusted, lambda e: ("account",)),
    ev.PnlUpdated: (apply_pnl_updated, lambda e: ("pnl",)),
    ev.TradingStateChanged: (apply_trading_state_changed, lambda e: ("trading",)),
    ev.DailyLossBreached: (apply_daily_loss_breached, lambda e: ("trading",)),
    ev.RunnerStatusChanged: (apply_runner_status, lambda e: (f"runner.{e.component}",)),
    ev.OrderSubmitted: (apply_order_submitted, _order),
    ev.OrderAccepted: (apply_order_accepted, _order),
    ev.OrderRejected: (apply_order_done, _order),
    ev.OrderCancelled: (apply_order_done, _order),
    ev.StateChanged: (apply_state_changed, _generic),
}


def apply_traced(state: State, event: ev.Event) -> tuple[State, tuple[str, ...]]:
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
        handler, touches = rule
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


def apply(state: State, event: ev.Event) -> State:
    """The state after ``event``: pure, never raises for a well-formed event."""
    return apply_traced(state, event)[0]


def replay(events: Iterable[ev.Event], state: State | None = None) -> State:
    """Fold ``events`` in order over ``state`` (default: :func:`initial_state`)."""
    current = initial_state() if state is None else state
    for event in events:
        current = apply_traced(current, event)[0]
    return current
