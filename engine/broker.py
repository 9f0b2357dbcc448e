"""The paper broker: takes orders that passed risk, fills them against market data, books them.

Runs on the engine thread. :meth:`PaperBroker.submit` accepts a valid order (``order_accepted``)
or refuses it (``order_rejected`` naming the field and value); working orders then fill by the
rules of :mod:`engine.fill_rules`:

* bars: on the first bar of the order's symbol whose time (its close, ``ts_event``) is later
  than the order's acceptance (at its open for a market order; when price crosses for a limit
  order), never on the bar the strategy decided on, nor on another symbol's bar of that time;
* quotes: buys at the ask, sells at the bid. When the broker has already seen a quote for the
  symbol, an order is checked against it at once on acceptance (``fill_on_known_quote``, the
  live behaviour: the quote is what the market offers now); otherwise, and for limit orders
  that do not cross yet, on each following tick.

The broker matches in the ``MATCH`` stage of the bus (see :class:`~streams.bus.Stage`): the
fills a market event causes are committed and folded before strategies, risk and P&L see that
event (docs/architecture.md, "Causal order").

Every fill is booked in the broker's own :class:`~engine.broker_account.BrokerLedger` (and its
file saved) *before* ``trade_executed`` is published: a real broker fills first and tells you
afterwards, so a crash in between leaves the broker ahead of the engine, which reconciliation
repairs on the next start. How one fill is sized, priced and reported (ids, partial fills
capped by ``max_volume_fraction``) is :mod:`engine.broker_fills`. How far an order has got
(filled quantity, a triggered stop-limit) is kept in the account file with the order, so a
restart goes on from there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from reactivex import abc

from engine.broker_account import (
    BrokerAccount,
    BrokerAccountError,
    BrokerFill,
    BrokerLedger,
)
from engine.broker_fills import (
    Quote,
    WorkingOrder,
    check_external,
    executed,
    external_fill,
    merge_quote,
    not_booked,
    plan_fill,
)
from engine.config import BrokerConfig
from engine.core import only
from engine.fill_rules import STOP_LIMIT, bar_fill_price, tick_fill_price, validate_order
from streams import topics
from streams.bus import EventBus, Stage
from streams.clock import Clock
from streams.events import (
    BarReceived,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    TickReceived,
    TradeExecuted,
)

log = logging.getLogger(__name__)


class PaperBroker:
    """A simulated broker with its own persisted account (see the module doc for fill rules).

    ``account_path`` is the account file (None = in memory, for backtests); an existing file
    is loaded and wins over ``starting_cash``. If the file cannot be read the broker is
    *unavailable*: :meth:`account` raises :class:`BrokerAccountError` (so reconciliation
    fails and the engine starts halted) and every order is rejected.
    """

    def __init__(
        self,
        publish: Callable[[Event], None],
        clock: Clock,
        config: BrokerConfig | None = None,
        *,
        account_path: str | os.PathLike[str] | None = None,
        starting_cash: float = 0.0,
    ) -> None:
        self._publish = publish
        self._clock = clock
        self.config = config if config is not None else BrokerConfig()
        self._account_path = account_path
        self._starting_cash = starting_cash
        self._ledger: BrokerLedger | None = None
        self._load_error: BrokerAccountError | None = None
        self._working: dict[str, dict[str, WorkingOrder]] = {}  # symbol -> order_id -> order
        self._quotes: dict[str, Quote] = {}
        self._seen_ids: set[str] = set()
        self._load()

    # -- wiring -------------------------------------------------------------------------------
    def attach(self, bus: EventBus) -> list[abc.DisposableBase]:
        """Match against bars and ticks in the ``MATCH`` stage (before anyone else sees them);
        follow cancellations published by others."""
        return [
            bus.subscribe(
                topics.ALL_BARS,
                only(BarReceived, self.on_bar),
                name="broker.bars",
                stage=Stage.MATCH,
            ),
            bus.subscribe(
                topics.ALL_TICKS,
                only(TickReceived, self.on_tick),
                name="broker.ticks",
                stage=Stage.MATCH,
            ),
            bus.subscribe(topics.ALL_ORDERS, self._on_order_event, name="broker.orders"),
        ]

    # -- orders -------------------------------------------------------------------------------
    def submit(self, order: OrderSubmitted) -> bool:
        """Accept ``order`` (filling it at once on a known quote) or reject it; True if accepted.

        An order that fills at once is saved with its fill in one write of the account file
        (one fsync on the engine thread instead of two); ``order_accepted`` and then
        ``trade_executed`` are published after that write, as for an order saved alone.
        """
        reason = self._refusal(order)
        at_once: float | None = None
        quote = self._quotes.get(order.symbol)
        if reason is None and quote is not None and self.config.fill_on_known_quote:
            at_once, _triggered = tick_fill_price(order, *quote)
        if reason is None:
            try:
                self._require_ledger().add_order(order, save=at_once is None)
            except BrokerAccountError as exc:
                reason = f"cannot record the order: {exc}"
        if reason is not None:
            self._publish(OrderRejected.of(order, f"broker: {reason}", self._clock.now_ns()))
            return False
        self._seen_ids.add(order.order_id)
        working = self._track(order)
        executed = None
        if at_once is not None:
            executed = self._book(working, at_once, order)
            if executed is None and not self._save_unfilled(order):
                return False
        self._publish(
            OrderAccepted(
                order_id=order.order_id,
                strategy=order.strategy,
                symbol=order.symbol,
                ts_event=self._clock.now_ns(),
                correlation_id=order.correlation_id,
                causation_id=order.event_id,
            )
        )
        if executed is not None:
            self._publish(executed)
        return True

    def _save_unfilled(self, order: OrderSubmitted) -> bool:
        """The order's immediate fill could not be booked: save the order alone (it stays
        working); if that fails too, forget it and reject it. True if saved."""
        ledger = self._require_ledger()
        try:
            ledger.save()
            return True
        except BrokerAccountError as exc:
            ledger.open_orders.pop(order.order_id, None)
            self._working.get(order.symbol, {}).pop(order.order_id, None)
            self._seen_ids.discard(order.order_id)
            reason = f"broker: cannot record the order: {exc}"
            self._publish(OrderRejected.of(order, reason, self._clock.now_ns()))
            return False

    def cancel(self, order_id: str, reason: str = "") -> bool:
        """Cancel a working order (``order_cancelled``); False if no such order is working."""
        if self._ledger is None:
            return False
        for orders in self._working.values():
            working = orders.get(order_id)
            if working is None:
                continue
            try:
                self._ledger.remove_order(order_id)
            except BrokerAccountError as exc:
                log.error("paper broker could not cancel %s: %s", order_id, exc)
                return False
            del orders[order_id]
            order = working.order
            self._publish(
                OrderCancelled(
                    order_id=order_id,
                    strategy=order.strategy,
                    symbol=order.symbol,
                    reason=reason,
                    ts_event=self._clock.now_ns(),
                    correlation_id=order.correlation_id,
                )
            )
            return True
        return False

    def open_orders(self, symbol: str | None = None) -> list[OrderSubmitted]:
        """The working orders (of one symbol, or all), oldest first."""
        if symbol is not None:
            return [w.order for w in self._working.get(symbol, {}).values()]
        return [w.order for orders in self._working.values() for w in orders.values()]

    # -- the account --------------------------------------------------------------------------
    def account(self) -> BrokerAccount:
        """A snapshot of the broker's books; raises BrokerAccountError if they cannot be read."""
        return self._require_ledger().snapshot()

    def inject_external_fill(
        self, symbol: str, side: str, qty: float, price: float, commission: float = 0.0
    ) -> BrokerFill:
        """Book a trade done at the broker outside the engine (e.g. by hand while it was down).

        Changes only the broker's account: nothing is published; reconciliation finds it.
        """
        check_external(side, qty, price, commission)
        ledger = self._require_ledger()
        fill = external_fill(
            symbol,
            side,
            qty,
            price,
            commission,
            number=ledger.fill_count + 1,
            now=self._clock.now_ns(),
        )
        ledger.book_fill(fill)
        return fill

    # -- market data --------------------------------------------------------------------------
    def on_bar(self, bar: BarReceived) -> None:
        """Fill the symbol's working orders placed before this bar's time (see module doc),
        each at most ``max_volume_fraction`` of the bar's volume when that is set."""
        orders = self._working.get(bar.symbol)
        if not orders:
            return
        cap = self.config.max_volume_fraction * bar.volume if bar.volume > 0 else 0.0
        for working in list(orders.values()):
            if working.after_ns >= bar.ts_event:
                continue
            price, triggered = bar_fill_price(working.order, bar, working.triggered)
            self._note_trigger(working, triggered)
            if price is not None:
                self._fill(working, price, bar, cap=cap or None)

    def on_tick(self, tick: TickReceived) -> None:
        """Remember the quote and fill the symbol's working orders it crosses."""
        quote = merge_quote(self._quotes.get(tick.symbol), tick.bid, tick.ask, tick.last)
        self._quotes[tick.symbol] = quote
        orders = self._working.get(tick.symbol)
        if not orders:
            return
        for working in list(orders.values()):
            self._try_quote_fill(working, quote, tick)

    # -- internals ----------------------------------------------------------------------------
    def _on_order_event(self, event: Event) -> None:
        # A cancel published straight to the bus (e.g. by a strategy's context) must stop the
        # order here too, or it would still fill; our own cancels find nothing left to drop.
        if not isinstance(event, OrderCancelled) or self._ledger is None:
            return
        orders = self._working.get(event.symbol, {})
        if event.order_id in orders:
            try:
                self._ledger.remove_order(event.order_id)
            except BrokerAccountError as exc:
                log.error("paper broker could not drop cancelled %s: %s", event.order_id, exc)
                return
            del orders[event.order_id]

    def _load(self) -> None:
        try:
            self._ledger = BrokerLedger(
                self._account_path or None,
                starting_cash=self._starting_cash,
                max_fills_kept=self.config.max_fills_kept,
            )
        except BrokerAccountError as exc:
            log.error("paper broker unavailable: %s", exc)
            self._load_error = exc
            return
        for order in self._ledger.open_orders.values():
            self._seen_ids.add(order.order_id)
            self._track(order, order.ts_event)

    def _require_ledger(self) -> BrokerLedger:
        if self._ledger is None:
            self._load()  # the file may have been repaired since
        if self._ledger is None:
            assert self._load_error is not None
            raise self._load_error
        return self._ledger

    def _refusal(self, order: OrderSubmitted) -> str | None:
        if self._ledger is None:
            self._load()  # the file may have been repaired since
        if self._ledger is None:
            return f"account unavailable ({self._load_error})"
        if order.order_id in self._seen_ids:
            return f"order_id {order.order_id!r} was already submitted"
        return validate_order(order)

    def _track(self, order: OrderSubmitted, after_ns: int | None = None) -> WorkingOrder:
        now = self._clock.now_ns() if after_ns is None else after_ns
        working = WorkingOrder(order, now)
        working.resume(self._ledger.progress.get(order.order_id) if self._ledger else None)
        self._working.setdefault(order.symbol, {})[order.order_id] = working
        return working

    def _note_trigger(self, working: WorkingOrder, triggered: bool) -> None:
        """A stop-limit that was just triggered is a limit order from now on (saved)."""
        if not triggered or working.triggered:
            return
        working.triggered = True
        if working.order.order_type != STOP_LIMIT:
            return
        try:
            self._require_ledger().mark_triggered(working.order.order_id)
        except BrokerAccountError as exc:
            log.error("paper broker could not save trigger of %s: %s", working.order.order_id, exc)

    def _try_quote_fill(
        self,
        working: WorkingOrder,
        quote: Quote,
        cause: Event,
    ) -> None:
        price, triggered = tick_fill_price(working.order, *quote, working.triggered)
        self._note_trigger(working, triggered)
        if price is not None:
            self._fill(working, price, cause)

    def _fill(
        self, working: WorkingOrder, raw_price: float, cause: Event, cap: float | None = None
    ) -> None:
        executed = self._book(working, raw_price, cause, cap=cap)
        if executed is not None:
            self._publish(executed)

    def _book(
        self, working: WorkingOrder, raw_price: float, cause: Event, *, cap: float | None = None
    ) -> TradeExecuted | None:
        """Book a fill of ``working`` at ``raw_price`` (slippage and commission applied), of
        what it leaves or at most ``cap``, and save; the ``trade_executed`` to publish, or None
        if it could not be booked (reported)."""
        order = working.order
        planned = plan_fill(working, raw_price, self.config, self._clock.now_ns(), cap)
        if planned is None:
            return None
        try:
            # booked and saved before anyone hears of it
            self._require_ledger().book_fill(planned.fill, done=planned.done)
        except BrokerAccountError as exc:
            # Not booked, so not filled: the order stays working and the next price retries.
            log.error("paper broker could not book fill %s: %s", planned.fill.fill_id, exc)
            self._publish(not_booked(order, planned.fill, exc, cause))
            return None
        working.filled += planned.fill.qty
        working.fills += 1
        if planned.done:
            self._working.get(order.symbol, {}).pop(order.order_id, None)
        return executed(order, planned.fill, planned.leaves, cause)
