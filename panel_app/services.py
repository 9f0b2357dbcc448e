"""Per-engine dashboard services, shared by every session: aggregates, the recent-trades
tape, history, backtests and the throttled Rx streams of the dashboard.

The throttled tier reads the state store's ``param`` views (P&L, runner status, prices)
through Rx observables composed with throttle and sample (:class:`EngineStreams`): each
session's subscription installs its own ``param`` watcher, removed with the session. Heartbeat
streams come from the bus and are shared (``ops.share``): one bus subscription and one set of
timers however many sessions are open, disposed when the last session leaves, so subscriber
counts return to where they were.

Built once per engine on first use (under a lock) and kept in the same autoreload-proof
holder as the engine itself, so sessions and ``--dev`` reloads never subscribe twice.

The process's one engine lives in that holder (:func:`process_holder`): a module registered in
``sys.modules`` under a private name that Panel's ``--dev`` reloads never touch, so a reload
finds the running engine instead of opening the DuckDB file a second time. It is stopped once
(shared services released, snapshot written, run marked ended) at interpreter exit, on
SIGTERM, or by :func:`shutdown_engine`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any

from reactivex import Observable, abc
from reactivex import operators as ops

from engine.config import DashboardConfig
from panel_app.aggregates import TradeAggregator
from panel_app.backtests import BacktestManager
from panel_app.facade import EngineFacade, EventBus, StateStore, dashboard_config, view_changes
from panel_app.history import HistoryService
from panel_app.recent_trades import RecentTrades
from streams import topics
from streams.events import Heartbeat
from streams.operators import sampled, staleness, throttled

log = logging.getLogger(__name__)
HOLDER_NAME = "_seamless_dashboard_engine_holder"


@dataclasses.dataclass
class EngineStreams:
    """The throttled tier of the dashboard.

    ``pnl``, ``runner`` and ``market`` read the state store's ``param`` views (the read model,
    :func:`state.read_model.view_changes`) composed with time operators; they are cold, so
    each session that subscribes installs its own ``param`` watcher and removes it when the
    session ends. ``beat`` and ``beat_staleness`` follow the engine's heartbeats on the bus
    (liveness is not state), shared by every session (hot, ref-counted).
    """

    pnl: Observable[tuple[Mapping[str, Any], int]]
    runner: Observable[Mapping[str, Any]]
    market: Observable[Mapping[str, Any]]
    beat: Observable[Any]
    beat_staleness: Observable[Any]


def build_streams(
    store: StateStore,
    bus: EventBus,
    cfg: DashboardConfig,
    scheduler: abc.SchedulerBase | None = None,
) -> EngineStreams:
    """The throttled tier over ``store`` and ``bus`` (nothing subscribes until a session does).

    * P&L: the ``pnl`` view, paired with the data time it is as of (the newest event's
      ``ts_event``: data time in replays and backtests, wall time live), throttled to
      ``pnl_throttle_s``;
    * runner status: the ``runner`` view, throttled to ``runner_throttle_s``;
    * market data: the ``prices`` view (every symbol's latest quote), sampled every
      ``market_sample_s``;
    * heartbeats: throttled, and their staleness after ``stale_after_s``.

    ``scheduler`` drives every timer (virtual time in tests)."""

    def as_of(pnl: Mapping[str, Any]) -> tuple[Mapping[str, Any], int]:
        return pnl, int(store.get_state("meta")["ts"])

    pnl = view_changes(store, "pnl").pipe(ops.map(as_of), throttled(cfg.pnl_throttle_s, scheduler))
    runner = view_changes(store, "runner").pipe(throttled(cfg.runner_throttle_s, scheduler))
    market = view_changes(store, "prices").pipe(sampled(cfg.market_sample_s, scheduler))
    beats = bus.observe(topics.system("runner")).pipe(
        ops.filter(lambda e: isinstance(e, Heartbeat))
    )
    beat = beats.pipe(throttled(cfg.runner_throttle_s, scheduler), ops.share())
    beat_staleness = beats.pipe(staleness(cfg.stale_after_s, scheduler=scheduler), ops.share())
    return EngineStreams(
        pnl=pnl, runner=runner, market=market, beat=beat, beat_staleness=beat_staleness
    )


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


def services_for(kernel: EngineFacade) -> EngineServices:
    """The services of ``kernel``, built (and subscribed once) on first call."""
    holder = process_holder()
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
            streams=build_streams(kernel.store, kernel.bus, cfg),
            recent=RecentTrades(cfg.recent_trades_rollover).attach(
                kernel.bus, kernel.log, aggregates.trade_page_bounds
            ),
        )
        registry[id(kernel)] = (kernel, services)
        return services


def release_services(kernel: EngineFacade) -> None:
    """Dispose of and forget the services of ``kernel`` (when the engine stops)."""
    holder = process_holder()
    with _LOCK:
        registry: dict[int, tuple[Any, EngineServices]] = holder.__dict__.setdefault("services", {})
        found = registry.pop(id(kernel), None)
    if found is not None:
        found[1].close()


# -- the process's one engine -------------------------------------------------------------------
def process_holder() -> Any:
    """The autoreload-proof holder of this process's engine, bootstrap and shared services.

    A module in ``sys.modules`` under a private name, created on first use: ``lock`` (an
    RLock), ``kernel``, ``bootstrap`` (the installed :class:`DashboardBootstrap`) and whatever
    per-engine registries the dashboard keeps there (``services``).
    """
    holder = sys.modules.get(HOLDER_NAME)
    if holder is None:
        fresh: Any = types.ModuleType(HOLDER_NAME)
        fresh.lock = threading.RLock()
        fresh.kernel = None
        fresh.bootstrap = None
        fresh.hooks_installed = False
        # setdefault: two threads racing here end up sharing whichever holder won.
        holder = sys.modules.setdefault(HOLDER_NAME, fresh)
    return holder


def get_engine(factory: Callable[[], EngineFacade]) -> EngineFacade:
    """The engine of this process, built and started by ``factory`` on first use.

    Thread-safe; every later call (from any session, after any reload) returns the same object.
    """
    holder = process_holder()
    kernel: EngineFacade | None = holder.kernel
    if kernel is not None:
        return kernel
    with holder.lock:
        if holder.kernel is None:
            holder.kernel = factory()
            _install_stop_hooks(holder)
            log.info("dashboard engine started")
        built: EngineFacade = holder.kernel
        return built


def set_engine(kernel: EngineFacade) -> None:
    """Use an already built ``kernel`` as this process's engine (tests, notebooks, benches)."""
    holder = process_holder()
    with holder.lock:
        holder.kernel = kernel
        _install_stop_hooks(holder)


def current_engine() -> EngineFacade | None:
    """The engine if one was built, else None (never builds one)."""
    kernel: EngineFacade | None = process_holder().kernel
    return kernel


def shutdown_engine() -> None:
    """Stop the engine cleanly once (idempotent); a later :func:`get_engine` builds a new one."""
    holder = process_holder()
    with holder.lock:
        kernel, holder.kernel = holder.kernel, None
    if kernel is None:
        return
    try:
        release_services(kernel)
        kernel.stop()
        log.info("dashboard engine stopped")
    except Exception:  # at exit there is nobody left to raise to
        log.exception("stopping the dashboard engine failed")


def _install_stop_hooks(holder: Any) -> None:
    if holder.hooks_installed:
        return
    holder.hooks_installed = True
    atexit.register(shutdown_engine)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be installed from the main thread
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        shutdown_engine()
        if callable(previous):
            previous(signum, frame)
        else:
            raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread of the main interpreter
        signal.signal(signal.SIGTERM, on_sigterm)
