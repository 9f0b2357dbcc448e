"""The broker port: what the engine needs from a venue, and how ``broker.kind`` picks one.

A broker is anything satisfying :class:`Broker`; the paper broker (:mod:`engine.broker`) is the
built-in ``paper`` kind, and a venue adapter is a ``seamless.brokers`` entry point naming a
:data:`BrokerFactory`. The rules a broker must keep, checked by the contract suite every
adapter can run (``testkit/broker_contract.py``, subclassed in
``tests/engine/test_broker_contract.py`` for the paper broker):

* ``submit`` takes an order that passed risk and answers with events, never by raising:
  ``order_accepted`` or ``order_rejected`` (naming the field and value), later
  ``trade_executed`` per fill and ``order_cancelled``. The order's ``order_id`` is the client
  order id: it is used once (a second submit of it is rejected, never filled twice), and every
  fill carries it, with a fill id unique per order.
* ``cancel`` cancels a working order (``order_cancelled``; True) or refuses (False, nothing
  published); ``open_orders`` lists the working orders, oldest first.
* ``account`` gives the venue's books (cash, positions, recent fills, open orders) for
  start-up reconciliation; it raises ``BrokerAccountError`` when they cannot be read, and the
  engine then starts halted.
* ``attach`` subscribes it to the bus (market data to match, cancellations), returning the
  subscriptions.

Everything runs on the engine thread; a venue's own threads hand fills in through ``publish``,
which is thread-safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from reactivex import abc

from engine.broker_account import BrokerAccount
from engine.config import SeamlessConfig
from streams.bus import EventBus
from streams.clock import Clock
from streams.errors import PluginError
from streams.events import Event, OrderSubmitted


@runtime_checkable
class Broker(Protocol):
    """What the engine trades through (see the module doc for the rules)."""

    def attach(self, bus: EventBus) -> list[abc.DisposableBase]:
        """Subscribe to what it needs on the bus (market data, cancellations)."""
        ...

    def submit(self, order: OrderSubmitted) -> bool:
        """Accept (True) or reject ``order``, answering with events."""
        ...

    def cancel(self, order_id: str, reason: str = "") -> bool:
        """Cancel a working order; False if no such order is working."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[OrderSubmitted]:
        """The working orders (of one symbol, or all), oldest first."""
        ...

    def account(self) -> BrokerAccount:
        """The venue's books; BrokerAccountError if they cannot be read."""
        ...


@dataclasses.dataclass(frozen=True)
class BrokerContext:
    """What a ``seamless.brokers`` factory is given: the whole config (``broker.options`` holds
    its own settings), ``publish`` (thread-safe) and the engine clock."""

    config: SeamlessConfig
    publish: Callable[[Event], None]
    clock: Clock


#: A ``seamless.brokers`` entry point: builds the broker; ConfigError naming a bad option.
BrokerFactory = Callable[[BrokerContext], Broker]


def paper_broker(context: BrokerContext) -> Broker:
    """The built-in ``paper`` kind: :class:`~engine.broker.PaperBroker` with ``broker``'s
    costs and fill rules, its account in ``broker.account_path`` (in memory when empty)."""
    from engine.broker import PaperBroker

    config = context.config
    return PaperBroker(
        context.publish,
        context.clock,
        config.broker,
        account_path=config.broker.account_path or None,
        starting_cash=config.state.starting_cash,
    )


def build_broker(config: SeamlessConfig, publish: Callable[[Event], None], clock: Clock) -> Broker:
    """The broker ``broker.kind`` names, built by its entry point's factory; PluginError naming
    the entry point, its distribution and the cause if it fails to load or to build one."""
    from engine import plugins

    kind = config.broker.kind
    broker = plugins.call_factory(
        plugins.BROKERS,
        kind,
        BrokerContext(config, publish, clock),
        where="broker.kind",
        what="the broker",
    )
    if not isinstance(broker, Broker):
        raise PluginError(
            f"broker.kind: {plugins.describe(plugins.BROKERS, kind)} returned"
            f" {type(broker).__name__}, which lacks the Broker methods (attach, submit, cancel,"
            " open_orders, account)"
        )
    return broker
