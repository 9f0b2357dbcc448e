"""The kernel's mode-specific wiring: plugin checks, the trading components, the data's clock.

The kernel (:mod:`engine.kernel`) stays the one composition root; these are the steps of it
that depend only on config and on what they are handed, split out so the kernel reads as the
order of construction and start-up. :func:`build_trading` builds the components a trading
kernel has (a mirror has none); :func:`follow_data_clock` makes replays and backtests run on
the data's time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from reactivex import abc

from engine import plugins
from engine.brokers import Broker, build_broker
from engine.config import SeamlessConfig
from engine.pnl import PnlTracker
from engine.portfolio import Portfolio
from engine.risk import RiskEngine
from engine.runner import LiveStrategyRunner
from engine.strategy_host import StrategyHost, build_strategy, resolve_strategy_class
from streams import topics
from streams.bus import EventBus, Stage
from streams.clock import Clock
from streams.errors import ConfigError
from streams.events import ACTIVE, Event
from streams.sources import FeedBase


def check_plugins(config: SeamlessConfig) -> None:
    """Load every strategy, the broker kind and the tab plugins ``config`` names, so a broken
    one fails before the event log is touched (PluginError or ConfigError naming it)."""
    for spec in config.strategies:
        resolve_strategy_class(spec.strategy)
    plugins.load(plugins.BROKERS, config.broker.kind)
    for name in config.dashboard.panels:
        plugins.load(plugins.PANELS, name)


@dataclasses.dataclass
class Trading:
    """The trading components of one engine, each publishing into the bus it is wired to."""

    broker: Broker
    risk: RiskEngine
    portfolio: Portfolio
    pnl: PnlTracker
    host: StrategyHost
    runner: LiveStrategyRunner


def build_trading(
    config: SeamlessConfig,
    bus: EventBus,
    store: Any,
    clock: Clock,
    *,
    feed_factory: Callable[[], FeedBase | None] | None,
    authorize: Callable[[str, str], bool],
) -> Trading:
    """Broker, risk, portfolio, P&L, the configured strategies and the runner (which starts a
    feed from ``feed_factory``; None for a backtest, whose caller feeds it). Risk limits an
    operator saved in the state win over the configured ones."""
    broker = build_broker(config, bus.publish, clock)
    risk = RiskEngine(bus.publish, store, clock, broker, config.risk)
    portfolio = Portfolio(bus.publish, store, clock)
    pnl = PnlTracker(bus.publish, store, clock, config.pnl)
    strategies = [
        build_strategy(s.strategy, s.name, s.symbols, s.params) for s in config.strategies
    ]
    host = StrategyHost(bus.publish, store, clock, strategies)
    runner = LiveStrategyRunner(
        publish=bus.publish,
        clock=clock,
        host=host,
        risk=risk,
        feed_factory=feed_factory,
        authorize=authorize,
        heartbeat_interval_s=config.runner.heartbeat_interval_s,
        trading_state=lambda: str(store.get_state("trading.state", ACTIVE)),
        store=store,
    )
    saved_limits = store.get_state("risk.limits", None)
    if saved_limits:
        risk.set_limits(dict(saved_limits))  # what an operator last set wins
    return Trading(broker, risk, portfolio, pnl, host, runner)


def follow_data_clock(bus: EventBus, clock: Clock, mode: str) -> list[abc.DisposableBase]:
    """Move ``clock`` to each market event's time before anyone handles it (replays and
    backtests); ConfigError if ``clock`` cannot be moved (it has no ``advance_to``)."""
    advance_to = getattr(clock, "advance_to", None)
    if advance_to is None:
        raise ConfigError(
            f"a {mode} kernel runs on the data's clock: its clock must have "
            f"advance_to(ns), got {type(clock).__name__}"
        )

    def follow(event: Event) -> None:
        advance_to(event.ts_event)

    return [
        bus.subscribe(pattern, follow, name="kernel.data-clock", stage=Stage.CLOCK)
        for pattern in (topics.ALL_BARS, topics.ALL_TICKS)
    ]
