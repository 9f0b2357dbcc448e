"""The broker contract suite: the rules of :mod:`engine.brokers` as tests any broker can run.

Subclass :class:`BrokerContract` in a test module (its name must start with ``Test``) and
implement :meth:`~BrokerContract.make_broker` and :meth:`~BrokerContract.move_market`; pytest
then runs every ``test_*`` here against that broker. The paper broker's subclass is
``tests/engine/test_broker_contract.py``; a venue adapter points ``make_broker`` at its sandbox
account and ``move_market`` at whatever makes that venue's price cross (or waits for it).

Each test gets a fresh :class:`BrokerRig`: the broker, a list of what it published, the clock
and a folder for its state. Orders use client order ids unique per test run, so a sandbox
account shared by runs is fine; the tests trade :attr:`BrokerContract.qty` units of
:attr:`BrokerContract.symbol` and leave no order working.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.brokers import Broker
from streams.clock import Clock, ManualClock
from streams.events import (
    BUY,
    SELL,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    TradeExecuted,
)


@dataclasses.dataclass
class BrokerRig:
    """One broker under test and everything it published, in order."""

    broker: Broker
    events: list[Event]
    clock: ManualClock
    folder: Path

    def of(self, kind: type[Event], order_id: str | None = None) -> list[Any]:
        """The published events of one type (of one order)."""
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (order_id is None or getattr(e, "order_id", "") == order_id)
        ]


class BrokerContract:
    """The contract; subclasses say how to build the broker and move its market."""

    symbol = "AAPL"
    qty = 3.0
    #: The price the market is moved to before each test; limits are placed far from it.
    price = 100.0

    # -- what a subclass implements -------------------------------------------------------------
    def make_broker(self, publish: Callable[[Event], None], clock: Clock, folder: Path) -> Broker:
        """A broker handing its events to ``publish``, on ``clock``, keeping its state in
        ``folder`` (called again on the same folder to test a restart)."""
        raise NotImplementedError

    def move_market(self, rig: BrokerRig, price: float) -> None:
        """Make ``symbol`` trade at ``price`` now (bid a little below, ask a little above)."""
        raise NotImplementedError

    # -- the rig --------------------------------------------------------------------------------
    @pytest.fixture
    def rig(self, tmp_path: Path) -> BrokerRig:
        """A fresh broker whose market trades at :attr:`price`."""
        events: list[Event] = []
        clock = ManualClock(1_000_000_000)
        rig = BrokerRig(self.make_broker(events.append, clock, tmp_path), events, clock, tmp_path)
        self.move_market(rig, self.price)
        return rig

    _ids = itertools.count(1)

    def order(self, side: str = BUY, qty: float | None = None, **kw: Any) -> OrderSubmitted:
        """A new order with a client order id never used before."""
        order_id = f"contract-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        return OrderSubmitted(
            order_id=order_id,
            strategy="contract",
            symbol=self.symbol,
            side=side,
            qty=self.qty if qty is None else qty,
            **kw,
        )

    def fill_market_order(self, rig: BrokerRig, side: str = BUY) -> OrderSubmitted:
        order = self.order(side)
        assert rig.broker.submit(order), rig.of(OrderRejected, order.order_id)
        rig.clock.advance(1.0)
        self.move_market(rig, self.price)
        return order

    # -- the contract ---------------------------------------------------------------------------
    def test_a_market_order_is_accepted_then_filled_as_events(self, rig: BrokerRig) -> None:
        order = self.fill_market_order(rig)

        accepted = rig.of(OrderAccepted, order.order_id)
        fills = rig.of(TradeExecuted, order.order_id)
        assert len(accepted) == 1
        assert rig.events.index(accepted[0]) < rig.events.index(fills[0])
        assert sum(f.qty for f in fills) == pytest.approx(self.qty)
        assert all(f.symbol == self.symbol and f.side == BUY and f.price > 0 for f in fills)
        assert fills[-1].leaves_qty == pytest.approx(0.0)
        assert len({f.fill_id for f in fills}) == len(fills)  # fill ids unique per order

    def test_a_client_order_id_is_used_once(self, rig: BrokerRig) -> None:
        order = self.fill_market_order(rig)
        fills_before = len(rig.of(TradeExecuted))

        again = rig.broker.submit(order)
        rig.clock.advance(1.0)
        self.move_market(rig, self.price)

        assert again is False
        assert order.order_id in rig.of(OrderRejected, order.order_id)[0].reason
        assert len(rig.of(TradeExecuted)) == fills_before  # never filled twice

    def test_an_invalid_order_is_rejected_naming_the_field(self, rig: BrokerRig) -> None:
        order = self.order(qty=-1.0)

        assert rig.broker.submit(order) is False

        (rejected,) = rig.of(OrderRejected, order.order_id)
        assert "qty" in rejected.reason and "-1" in rejected.reason
        assert not rig.of(TradeExecuted, order.order_id)

    def test_a_working_order_is_listed_until_cancelled(self, rig: BrokerRig) -> None:
        far = self.order(order_type="limit", limit_price=round(self.price * 0.5, 2))

        assert rig.broker.submit(far)
        listed = [o.order_id for o in rig.broker.open_orders(self.symbol)]
        assert far.order_id in listed
        assert far.order_id in rig.broker.account().open_orders

        assert rig.broker.cancel(far.order_id, "contract") is True
        assert len(rig.of(OrderCancelled, far.order_id)) == 1
        assert far.order_id not in [o.order_id for o in rig.broker.open_orders()]
        assert not rig.of(TradeExecuted, far.order_id)

    def test_cancelling_an_unknown_order_is_refused_quietly(self, rig: BrokerRig) -> None:
        published = len(rig.events)

        assert rig.broker.cancel("contract-no-such-order") is False
        assert len(rig.events) == published

    def test_the_account_holds_the_fills_for_reconciliation(self, rig: BrokerRig) -> None:
        before = rig.broker.account()
        bought = self.fill_market_order(rig, BUY)
        sold = self.fill_market_order(rig, SELL)
        self.fill_market_order(rig, BUY)

        after = rig.broker.account()
        fills = rig.of(TradeExecuted)
        assert {bought.order_id, sold.order_id} <= {f.order_id for f in fills}
        assert after.position(self.symbol) - before.position(self.symbol) == pytest.approx(self.qty)
        assert after.fill_count - before.fill_count == len(fills)
        assert {f.fill_id for f in fills} <= {f.fill_id for f in after.fills}
        spent = sum(
            (f.qty * f.price if f.side == BUY else -f.qty * f.price) + f.commission for f in fills
        )
        assert before.cash - after.cash == pytest.approx(spent)

    def test_a_restarted_broker_has_the_same_books(self, rig: BrokerRig) -> None:
        self.fill_market_order(rig)
        far = self.order(order_type="limit", limit_price=round(self.price * 0.5, 2))
        assert rig.broker.submit(far)
        before = rig.broker.account()

        restarted = self.make_broker(rig.events.append, rig.clock, rig.folder)

        after = restarted.account()
        assert after.position(self.symbol) == pytest.approx(before.position(self.symbol))
        assert after.cash == pytest.approx(before.cash)
        assert far.order_id in after.open_orders
        assert restarted.cancel(far.order_id) is True
