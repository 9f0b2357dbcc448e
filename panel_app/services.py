"""Per-engine dashboard services, shared by every session: aggregates, the recent-trades
tape, history, backtests and the throttled Rx streams of the dashboard.

The throttled tier's streams (P&L, heartbeat, staleness, sampled market data) are built once
per engine and shared (``ops.share``): however many sessions are open, each stream runs one
bus subscription and one set of Rx timers, and its upstream subscription is disposed when the
last session leaves, so subscriber counts return to where they were.

Built once per engine on first use (under a lock) and kept in the same autoreload-proof
holder as the engine itself, so sessions and ``--dev`` reloads never subscribe twice.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from reactivex import Observable
from reactivex import operators as ops

from engine.config import DashboardConfig
from panel_app.aggregates import TradeAggregator
from panel_app.backtests import BacktestManager
from panel_app.bootstrap import process_holder as _holder
from panel_app.facade import dashboard_config
from panel_app.history import HistoryService
from panel_app.recent_trades import RecentTrades
from streams import topics
from streams.events import BarReceived, Event, Heartbeat, PnlUpdated, TickReceived
from streams.operators import conflate_latest, staleness, throttled


@dataclasses.dataclass
class EngineStreams:
    """The throttled tier, shared by all sessions of one engine (hot, ref-counted)."""

    pnl: Observable[Any]
    beat: Observable[Any]
    beat_staleness: Observable[Any]
    market: Observable[Any]


def build_streams(bus: Any, cfg: DashboardConfig) -> EngineStreams:
    """Shared throttled streams over ``bus`` (nothing subscribes until a session does)."""
    pnl = bus.observe(topics.PNL).pipe(
        ops.filter(lambda e: isinstance(e, PnlUpdated)), throttled(cfg.pnl_throttle_s), ops.share()
    )
    beats = bus.observe("system.>").pipe(ops.filter(lambda e: isinstance(e, Heartbeat)))
    beat = beats.pipe(throttled(cfg.runner_throttle_s), ops.share())
    beat_staleness = beats.pipe(staleness(cfg.stale_after_s), ops.share())

    def symbol_of(event: Event) -> str:
        return str(getattr(event, "symbol", ""))

    market = bus.observe("data.>").pipe(
        ops.filter(lambda e: isinstance(e, TickReceived | BarReceived)),
        conflate_latest(symbol_of, cfg.market_sample_s),
        ops.share(),
    )
    return EngineStreams(pnl=pnl, beat=beat, beat_staleness=beat_staleness, market=market)


@dataclasses.dataclass
class EngineServices:
    """What all sessions of one engine share."""

    aggregates: TradeAggregator
    history: HistoryService
    backtests: BacktestManager
    streams: EngineStreams
    recent: RecentTrades

    def close(self) -> None:
        """Dispose of the shared bus subscriptions."""
        self.aggregates.detach()
        self.recent.detach()


_LOCK = threading.Lock()


def services_for(kernel: Any) -> EngineServices:
    """The services of ``kernel``, built (and subscribed once) on first call."""
    holder = _holder()
    with _LOCK:
        registry: dict[int, tuple[Any, EngineServices]] = holder.__dict__.setdefault("services", {})
        found = registry.get(id(kernel))
        if found is not None and found[0] is kernel:
            return found[1]
        cfg = dashboard_config(kernel)
        aggregates = TradeAggregator(curve_points=cfg.chart_points).attach(kernel.bus, kernel.log)
        services = EngineServices(
            aggregates=aggregates,
            history=HistoryService(kernel.log, aggregates, ttl_s=cfg.cache_ttl_s),
            backtests=BacktestManager(ttl_s=cfg.cache_ttl_s),
            streams=build_streams(kernel.bus, cfg),
            recent=RecentTrades(cfg.recent_trades_rollover).attach(
                kernel.bus, kernel.log, aggregates.trade_page_bounds
            ),
        )
        registry[id(kernel)] = (kernel, services)
        return services


def release_services(kernel: Any) -> None:
    """Dispose of and forget the services of ``kernel`` (when the engine stops)."""
    holder = _holder()
    with _LOCK:
        registry: dict[int, tuple[Any, EngineServices]] = holder.__dict__.setdefault("services", {})
        found = registry.pop(id(kernel), None)
    if found is not None:
        found[1].close()
