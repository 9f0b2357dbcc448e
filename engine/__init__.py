"""The trading engine, and the stable public API a plugin imports (``from engine import
Strategy, BUY, SELL``). These names stay put when the modules behind them move; anything
imported from a submodule instead is internal and may change. Reference: ``docs/plugins.md``.

The names are resolved on first use (PEP 562), so ``import engine`` stays cheap and importing
one engine module does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.broker_account import BrokerAccount
    from engine.brokers import Broker, BrokerContext
    from engine.config import ChannelConfig, FeedConfig
    from engine.config.notify import parse_selector
    from engine.feeds import FeedKind
    from engine.notify.base import DeliveryFailed, Notifier, summarize
    from engine.notify.channels import NotifierContext
    from engine.plugins import BROKERS, FEEDS, NOTIFIERS, PANELS, STRATEGIES, PluginInfo
    from engine.strategy import Strategy, StrategyContext
    from streams.clock import Clock
    from streams.errors import ConfigError, PluginError, SeamlessError
    from streams.events import (
        BUY,
        SELL,
        SIDES,
        BarReceived,
        ErrorRaised,
        Event,
        OrderCancelled,
        OrderRejected,
        OrderSubmitted,
        SignalDetected,
        TickReceived,
        TradeExecuted,
    )
    from streams.sources import FeedBase, ReplayFeed, ReplayTable, load_replay_table

#: Public name -> the module that defines it today.
_EXPORTS = {
    # writing a strategy
    "Strategy": "engine.strategy",
    "StrategyContext": "engine.strategy",
    "BUY": "streams.events",
    "SELL": "streams.events",
    "SIDES": "streams.events",
    "Clock": "streams.clock",
    # the events a plugin sees or publishes
    "Event": "streams.events",
    "BarReceived": "streams.events",
    "TickReceived": "streams.events",
    "TradeExecuted": "streams.events",
    "SignalDetected": "streams.events",
    "OrderSubmitted": "streams.events",
    "OrderCancelled": "streams.events",
    "OrderRejected": "streams.events",
    "ErrorRaised": "streams.events",
    # writing a feed kind
    "FeedKind": "engine.feeds",
    "FeedConfig": "engine.config",
    "FeedBase": "streams.sources",
    "ReplayFeed": "streams.sources",
    "ReplayTable": "streams.sources",
    "load_replay_table": "streams.sources",
    # writing a broker (a venue adapter)
    "Broker": "engine.brokers",
    "BrokerContext": "engine.brokers",
    "BrokerAccount": "engine.broker_account",
    # writing a notification channel
    "Notifier": "engine.notify.base",
    "NotifierContext": "engine.notify.channels",
    "ChannelConfig": "engine.config",
    "parse_selector": "engine.config.notify",
    "DeliveryFailed": "engine.notify.base",
    "summarize": "engine.notify.base",
    # the extension groups and errors
    "STRATEGIES": "engine.plugins",
    "FEEDS": "engine.plugins",
    "BROKERS": "engine.plugins",
    "NOTIFIERS": "engine.plugins",
    "PANELS": "engine.plugins",
    "PluginInfo": "engine.plugins",
    "SeamlessError": "streams.errors",
    "ConfigError": "streams.errors",
    "PluginError": "streams.errors",
}

__all__ = [
    "BROKERS",
    "BUY",
    "FEEDS",
    "NOTIFIERS",
    "PANELS",
    "SELL",
    "SIDES",
    "STRATEGIES",
    "BarReceived",
    "Broker",
    "BrokerAccount",
    "BrokerContext",
    "ChannelConfig",
    "Clock",
    "ConfigError",
    "DeliveryFailed",
    "ErrorRaised",
    "Event",
    "FeedBase",
    "FeedConfig",
    "FeedKind",
    "Notifier",
    "NotifierContext",
    "OrderCancelled",
    "OrderRejected",
    "OrderSubmitted",
    "PluginError",
    "PluginInfo",
    "ReplayFeed",
    "ReplayTable",
    "SeamlessError",
    "SignalDetected",
    "Strategy",
    "StrategyContext",
    "TickReceived",
    "TradeExecuted",
    "load_replay_table",
    "parse_selector",
    "summarize",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
