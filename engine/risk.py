"""Pre-trade risk checks and the daily-loss circuit breaker.

Every ``order_submitted`` passes here before the broker (engine thread). Checks, in order:

1. trading state: HALTED refuses everything; REDUCING accepts only orders that shrink
   ``|position|`` (counting open orders on the same side) without crossing zero;
2. malformed orders (side, qty, type, limit price) go straight to the broker, which rejects
   them naming the field;
3. ``max_position``: ``|position + open same-side orders + this order| <= limit`` per symbol
   (``position_limits`` overrides it per symbol);
4. ``max_order_notional``: ``qty * price <= limit``, the price being the limit price of a limit
   or stop-limit order, the stop price of a stop order, else the last known price; with no
   price known the order is refused when
   ``require_price`` (the default), since its size cannot be judged;
5. ``max_orders_per_second``: orders passed to the broker in the last second of clock time
   (a sliding window over the whole engine).

A refusal is an ``order_rejected`` whose reason names the rule, the value and the limit; a limit
of 0 switches its check off. Orders the risk engine places itself (flattening, strategy
``risk``) skip the checks: they only reduce positions and must go through while halted.

Daily loss: on ``pnl_updated`` with ``daily <= -daily_loss_limit`` while ACTIVE, the engine
publishes ``daily_loss_breached`` and ``trading_state_changed`` (HALTED, or REDUCING when
``breach_action`` is ``reduce``), cancels the strategies' open orders, and flattens every
position if ``flatten_on_breach``. It does not fire again while trading is not ACTIVE; only
:meth:`RiskEngine.reset` (an operator's ``reset`` command) resumes. After a reset inside a losing
session, the next breach is a further ``daily_loss_limit`` below the daily P&L at the reset;
the threshold returns to ``-daily_loss_limit`` when a new session starts (or after a restart).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from reactivex import abc

from engine.config import RiskConfig, build, to_dict
from engine.core import only
from engine.fill_rules import LIMIT, STOP, STOP_LIMIT, validate_order
from state.model import QTY_EPSILON
from streams import topics
from streams.bus import EventBus
from streams.clock import NS_PER_S, Clock
from streams.errors import ConfigError
from streams.events import (
    ACTIVE,
    BUY,
    HALTED,
    REDUCING,
    SELL,
    DailyLossBreached,
    Event,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    PnlUpdated,
    TradeExecuted,
    TradingStateChanged,
)

RISK = "risk"


class OrderRouter(Protocol):
    """Where orders that pass go, and where open orders are cancelled (the broker)."""

    def submit(self, order: OrderSubmitted) -> bool:
        """Accept or reject ``order``; True if accepted."""
        ...

    def cancel(self, order_id: str, reason: str = "") -> bool:
        """Cancel a working order; False if it is not working."""
        ...


#: Limits an operator may change while the engine runs (``set_risk_limits`` command).
TUNABLE_LIMITS = ("max_position", "max_order_notional", "max_orders_per_second", "daily_loss_limit")


class RiskEngine:
    """Checks orders before the broker and trips the daily-loss breaker (see module doc)."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        store: Any,
        clock: Clock,
        broker: OrderRouter,
        config: RiskConfig | None = None,
    ) -> None:
        self._publish = publish
        self._store = store
        self._clock = clock
        self._broker = broker
        self.config = config if config is not None else RiskConfig()
        self._sent: deque[int] = deque()
        self._own: dict[str, tuple[str, float]] = {}  # our open orders: id -> (symbol, signed)
        self._count = 0
        # A state we published but the store has not folded yet, and the trading node it saw.
        self._pending: tuple[str, Any] | None = None
        self._threshold: tuple[int, float] | None = None  # (session, daily) after a reset

    def attach(self, bus: EventBus) -> list[abc.DisposableBase]:
        """Check every submitted order, watch P&L, and follow our own orders to completion."""
        return [
            bus.subscribe(topics.ALL_ORDERS, self._on_order_event, name="risk.orders"),
            bus.subscribe(topics.PNL, only(PnlUpdated, self.on_pnl), name="risk.pnl"),
            bus.subscribe(topics.fills(RISK), self._on_own_fill, name="risk.fills"),
        ]

    @property
    def trading_state(self) -> str:
        """active, halted or reducing, counting a change we published but is not folded yet."""
        trading = self._store.get_state("trading")
        pending = self._pending
        if pending is not None:
            if pending[1] is trading:
                return pending[0]
            self._pending = None
        return str(trading["state"])

    # -- pre-trade checks ---------------------------------------------------------------------
    def check(self, order: OrderSubmitted) -> str | None:
        """Why ``order`` must be refused (rule, value, limit), or None if it may go on."""
        state = self.trading_state
        if state == HALTED:
            reason = self._store.get_state("trading.reason", "")
            return f"trading_state: trading is halted ({reason or 'no reason given'})"
        if validate_order(order) is not None:
            return None  # the broker rejects it, naming the field
        position = self._position(order.symbol)
        signed = order.qty if order.side == BUY else -order.qty
        same_side = self._open_same_side(order)
        if state == REDUCING:
            reduces = position != 0.0 and (signed > 0) != (position > 0)
            if not reduces or abs(signed + same_side) > abs(position) + QTY_EPSILON:
                return (
                    f"trading_state: reducing only; {order.side} {order.qty:g} {order.symbol} "
                    f"does not reduce position {position:g} (open same-side orders {same_side:g})"
                )
        cfg = self.config
        limit = cfg.position_limits.get(order.symbol, cfg.max_position)
        projected = position + same_side + signed
        if limit > 0 and abs(projected) > limit + QTY_EPSILON:
            return (
                f"max_position: {order.symbol} position would be {projected:g} (position "
                f"{position:g}, open orders {same_side:g}, order {signed:+g}), limit {limit:g}"
            )
        if cfg.max_order_notional > 0:
            price = self._price(order)
            if price is None:
                if cfg.require_price:
                    return f"max_order_notional: no price known for {order.symbol} to size it"
            else:
                notional = order.qty * price
                if notional > cfg.max_order_notional:
                    return (
                        f"max_order_notional: {notional:,.2f} ({order.qty:g} x {price:g}) "
                        f"exceeds limit {cfg.max_order_notional:,.2f}"
                    )
        if cfg.max_orders_per_second > 0:
            recent = self._recent_orders(self._clock.now_ns())
            if recent >= cfg.max_orders_per_second:
                return (
                    f"max_orders_per_second: {recent + 1} orders within 1s, "
                    f"limit {cfg.max_orders_per_second}"
                )
        return None

    def on_order_submitted(self, order: OrderSubmitted) -> None:
        """Pass ``order`` to the broker or publish its ``order_rejected``."""
        if order.order_id in self._own:
            self._broker.submit(order)
            return
        reason = self.check(order)
        if reason is not None:
            self._publish(OrderRejected.of(order, f"risk: {reason}", self._clock.now_ns()))
            return
        self._sent.append(self._clock.now_ns())
        self._broker.submit(order)

    # -- daily loss ---------------------------------------------------------------------------
    def on_pnl(self, pnl: PnlUpdated) -> None:
        """Trip the breaker when the daily loss reaches the limit while trading is active."""
        limit = self.config.daily_loss_limit
        if limit <= 0:
            return
        threshold = -limit
        if self._threshold is not None:
            session, at_reset = self._threshold
            if session == pnl.session_start:
                threshold = min(threshold, at_reset - limit)
            else:
                self._threshold = None
        previous = self.trading_state
        if pnl.daily > threshold or previous != ACTIVE:
            return
        cfg = self.config
        reducing = cfg.breach_action == "reduce"
        new_state = REDUCING if reducing else HALTED
        action = ("reduce" if reducing else "halt") + ("+flatten" if cfg.flatten_on_breach else "")
        now = self._clock.now_ns()
        reason = f"daily loss breached: daily P&L {pnl.daily:,.2f} <= {threshold:,.2f}"
        self._publish(
            DailyLossBreached(
                daily_pnl=pnl.daily,
                limit=threshold,
                action=action,
                ts_event=now,
                causation_id=pnl.event_id,
            )
        )
        self._set_state(new_state, reason, RISK, previous, cause=pnl)
        self._cancel_strategy_orders(reason)
        if cfg.flatten_on_breach:
            self.flatten_all(RISK, reason)

    # -- operator actions ---------------------------------------------------------------------
    def set_limits(self, limits: Mapping[str, Any]) -> RiskConfig:
        """Change limits at run time (validated like config; ConfigError names the bad key).

        Only the keys given change; the new limits apply from the next order."""
        unknown = sorted(set(limits) - set(TUNABLE_LIMITS))
        if unknown:
            raise ConfigError(
                f"risk.{unknown[0]}: not a limit that can be changed at run time "
                f"(allowed: {', '.join(TUNABLE_LIMITS)})"
            )
        merged = {**to_dict(self.config), **dict(limits)}
        self.config = build(RiskConfig, merged, path="risk")
        return self.config

    def reset(self, actor: str, reason: str = "operator reset") -> TradingStateChanged | None:
        """Resume trading (ACTIVE) after a halt; None if trading is already active."""
        previous = self.trading_state
        if previous == ACTIVE:
            return None
        pnl = self._store.get_state("pnl")
        self._threshold = (pnl.get("session_start", 0), pnl["daily"])
        return self._set_state(ACTIVE, reason, actor, previous)

    def halt(self, actor: str, reason: str) -> TradingStateChanged | None:
        """Stop all trading but the risk engine's own orders; None if already halted."""
        previous = self.trading_state
        if previous == HALTED:
            return None
        return self._set_state(HALTED, reason, actor, previous)

    def flatten_all(self, actor: str, reason: str = "flatten") -> list[OrderSubmitted]:
        """Cancel the strategies' open orders and send market orders closing every position.

        Our own closing orders still open are counted, so flattening twice does not overshoot.
        The orders are published as ``order_submitted`` (strategy ``risk``) and pass risk
        unchecked; the broker fills them by its usual rules.
        """
        self._cancel_strategy_orders(reason)
        pending: dict[str, float] = {}
        for symbol, signed in self._own.values():
            pending[symbol] = pending.get(symbol, 0.0) + signed
        orders = []
        now = self._clock.now_ns()
        for symbol, pos in self._store.get_state("positions").items():
            remaining = pos["qty"] + pending.get(symbol, 0.0)
            if abs(remaining) <= QTY_EPSILON:
                continue
            self._count += 1
            order = OrderSubmitted(
                order_id=f"{RISK}-{now}-{self._count}",
                strategy=RISK,
                symbol=symbol,
                side=SELL if remaining > 0 else BUY,
                qty=abs(remaining),
                actor=actor,
                ts_event=now,
            )
            self._own[order.order_id] = (symbol, -remaining)
            self._publish(order)
            orders.append(order)
        return orders

    # -- internals ----------------------------------------------------------------------------
    def _on_order_event(self, event: Event) -> None:
        if isinstance(event, OrderSubmitted):
            self.on_order_submitted(event)
        elif isinstance(event, OrderRejected | OrderCancelled):
            self._own.pop(event.order_id, None)

    def _on_own_fill(self, event: Event) -> None:
        if isinstance(event, TradeExecuted) and event.leaves_qty <= 0.0:
            self._own.pop(event.order_id, None)

    def _set_state(
        self, state: str, reason: str, actor: str, previous: str, cause: Event | None = None
    ) -> TradingStateChanged:
        event = TradingStateChanged(
            state=state,
            previous=previous,
            reason=reason,
            actor=actor,
            ts_event=self._clock.now_ns(),
            causation_id=cause.event_id if cause is not None else None,
        )
        self._pending = (state, self._store.get_state("trading"))
        self._publish(event)
        return event

    def _cancel_strategy_orders(self, reason: str) -> None:
        for order_id in list(self._store.get_state("orders")):
            if order_id not in self._own:
                self._broker.cancel(order_id, reason)

    def _position(self, symbol: str) -> float:
        pos = self._store.get_state(f"positions.{symbol}", None)
        return float(pos["qty"]) if pos is not None else 0.0

    def _open_same_side(self, order: OrderSubmitted) -> float:
        """Signed open quantity of other orders on ``order``'s symbol and side."""
        total = 0.0
        open_orders: Mapping[str, Any] = self._store.get_state("orders")
        for order_id, other in open_orders.items():
            if order_id == order.order_id or other["symbol"] != order.symbol:
                continue
            if other["side"] == order.side:
                leaves = float(other["leaves_qty"])
                total += leaves if order.side == BUY else -leaves
        return total

    def _price(self, order: OrderSubmitted) -> float | None:
        """The price an order is sized at: its limit, else its stop, else the last price."""
        if order.order_type in (LIMIT, STOP_LIMIT) and order.limit_price is not None:
            return float(order.limit_price)
        if order.order_type == STOP and order.stop_price is not None:
            return float(order.stop_price)
        last = self._store.get_state(f"prices.{order.symbol}.last", None)
        return float(last) if last is not None else None

    def _recent_orders(self, now: int) -> int:
        window_start = now - NS_PER_S
        sent = self._sent
        while sent and sent[0] <= window_start:
            sent.popleft()
        return len(sent)
