"""The composition root: builds every engine component from config, in a readable order.

``Kernel.from_config(config)`` opens the event log, restores the state (snapshot + replay),
wires the bus, store, broker, risk, portfolio, P&L, strategies, feed and runner, and starts
nothing. ``start()`` records the run, reconciles with the broker (a failure starts the engine
halted, never trading on a wrong position), starts heartbeats and housekeeping (snapshots,
durability watch) and, if configured, the runner. ``stop()`` is a clean stop: runner stopped,
everything dispatched, a final snapshot, the run marked ended, the log closed.

This is the one place that reads config; components receive their collaborators.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from reactivex import abc

from engine.access_config import make_authorizer
from engine.broker import PaperBroker
from engine.config import SeamlessConfig
from engine.core import build_core
from engine.feeds import build_feed
from engine.lifecycle import STARTING, STOPPED
from engine.pnl import PnlTracker
from engine.portfolio import Portfolio
from engine.process_tuning import GC_PAUSES
from engine.reconcile import Reconciler, ReconciliationFailed, ReconciliationResult
from engine.recorders import Fence, open_recorder
from engine.risk import RiskEngine
from engine.runner import LiveStrategyRunner
from engine.strategy_host import StrategyHost, build_strategy
from persistence import CLEAN, RestoreResult, Snapshotter, restore
from persistence.recorder import Recorder
from streams.clock import NS_PER_S, Clock, LiveClock
from streams.errors import SeamlessError
from streams.events import ACTIVE, CommandIssued, ErrorRaised, Event, Heartbeat
from streams.sources import FeedBase

log = logging.getLogger(__name__)

Authorizer = Callable[[str, str], bool]
#: How often the housekeeping thread wakes (snapshots, feed stall, dispatch watchdog).
HOUSEKEEPING_S = 0.25


class Kernel:
    """One engine instance: the facade the CLI, the dashboard and notebooks use.

    Public collaborators: ``config``, ``clock``, ``log`` (the event log, a Recorder), ``bus``,
    ``store``, ``broker``, ``risk``, ``portfolio``, ``pnl``, ``host`` (strategies), ``runner``.
    """

    def __init__(
        self,
        config: SeamlessConfig,
        *,
        clock: Clock | None = None,
        authorize: Authorizer | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or LiveClock()
        self._extra_authorize: Authorizer | None = (
            authorize if authorize is not None else make_authorizer(config.access)
        )
        logging.getLogger().setLevel(config.engine.log_level)

        self.log: Recorder = open_recorder(config.storage, fence=fence)
        try:
            self.restored: RestoreResult = restore(self.log)
            self._build()
        except BaseException:
            self.log.close()
            raise
        self.run_id: str | None = None
        self.reconciliation: ReconciliationResult | None = None
        self._subscriptions: list[abc.DisposableBase] = []
        self._housekeeping: threading.Thread | None = None
        self._stopping = threading.Event()
        self._last_heartbeat_ns = 0
        self._started = False
        self._stall_halted = False  # a halt for the current feed stall was sent
        self._stall_reported = False  # the current long dispatch round was noticed
        self._stall_pending = 0.0  # its report, not yet published (the inbox was full)
        #: The JetStream outbox relay (``bus.transport: jetstream``), started by ``start``.
        self.relay: Any = None

    @classmethod
    def from_config(cls, config: SeamlessConfig, **kwargs: Any) -> Kernel:
        """Build an engine from a validated config (see :func:`engine.config.load_config`)."""
        return cls(config, **kwargs)

    def _build(self) -> None:
        config = self.config
        self.core = build_core(
            journal=self.log,
            clock=self.clock,
            threaded=True,
            starting_cash=config.state.starting_cash,
            owners=config.state.owners,
            view_interval_s=config.state.view_interval_s,
            capacity=config.bus.capacity,
            max_batch=config.bus.max_batch,
            initial_state=self.restored.state,
        )
        self.bus = self.core.bus
        self.store = self.core.store
        self.bus.join(10)  # the starting-cash deposit of a new log is folded before anyone reads
        publish = self.bus.publish
        self.broker = PaperBroker(
            publish,
            self.clock,
            config.broker,
            account_path=config.broker.account_path or None,
            starting_cash=config.state.starting_cash,
        )
        self.risk = RiskEngine(publish, self.store, self.clock, self.broker, config.risk)
        self.portfolio = Portfolio(publish, self.store, self.clock)
        self.pnl = PnlTracker(publish, self.store, self.clock, config.pnl)
        strategies = [
            build_strategy(s.strategy, s.name, s.symbols, s.params) for s in config.strategies
        ]
        self.host = StrategyHost(publish, self.store, self.clock, strategies)
        self.runner = LiveStrategyRunner(
            publish=publish,
            clock=self.clock,
            host=self.host,
            risk=self.risk,
            feed_factory=lambda: build_feed(config.feed, publish, self.clock),
            authorize=self.authorize,
            heartbeat_interval_s=config.runner.heartbeat_interval_s,
            trading_state=lambda: str(self.store.get_state("trading.state", ACTIVE)),
            store=self.store,
        )
        saved_limits = self.store.get_state("risk.limits", None)
        if saved_limits:
            self.risk.set_limits(dict(saved_limits))  # what an operator last set wins
        self.snapshotter = Snapshotter(
            self.log, self._snapshot_source, interval_s=config.storage.snapshot_interval_s
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Kernel:
        """Record the run, attach components, reconcile, start heartbeats and the runner."""
        if self._started:
            return self
        self._started = True
        self.run_id = self.log.start_run(self.config.config_hash())
        for component in (self.broker, self.risk, self.portfolio, self.pnl, self.host, self.runner):
            self._subscriptions.extend(component.attach(self.bus))
        self._subscriptions.append(
            self.bus.subscribe("system.*", self._on_system, name="kernel.heartbeats")
        )
        self._reconcile()
        self.runner.start_heartbeats()
        self._housekeeping = threading.Thread(
            target=self._housekeep, name="kernel-housekeeping", daemon=True
        )
        self._housekeeping.start()
        if self.config.bus.transport == "jetstream":
            from engine.jetstream import start_relay

            self.relay = start_relay(self.config, self.log)
        if self.config.runner.autostart:
            self.command("start", "engine")
            # Wait for the command to be handled, not for the bus to drain: a busy feed may
            # keep it from ever draining.
            deadline = time.monotonic() + 10.0
            while self.runner.status in (STOPPED, STARTING) and time.monotonic() < deadline:
                time.sleep(0.01)
        return self

    def stop(self, how: str = CLEAN) -> None:
        """Stop cleanly: runner stopped, queue drained, final snapshot, run ended, log closed."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        try:
            if self._started and self.runner.lifecycle.allowed("stop"):
                self.command("stop", "engine")
            self.bus.join(10)
            self.runner.stop_heartbeats()
            if self.runner.feed is not None:
                self.runner.feed.stop()
            self.bus.join(10)
            if self._housekeeping is not None:
                self._housekeeping.join(5)
            for sub in self._subscriptions:
                sub.dispose()
            self.bus.stop()
            self.snapshotter.snapshot_now(created_at_ns=self.clock.now_ns())
            if self.run_id is not None:
                self.log.end_run(self.run_id, how)
        finally:
            if self.relay is not None:
                try:
                    self.log.flush()  # commit the tail, so the relay sends it before stopping
                except SeamlessError:
                    log.exception("final flush before stopping the relay failed")
                self.relay.stop()
            self.log.close()

    def __enter__(self) -> Kernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- facade ----------------------------------------------------------------------------
    def command(self, command: str, actor: str, **args: Any) -> CommandIssued:
        """Publish an operator command as ``actor`` (audited; refused without the right)."""
        return self.runner.command(command, actor, **args)

    def authorize(self, actor: str, command: str) -> bool:
        """May ``actor`` issue ``command``? System actors, then users with the operator role."""
        if actor in self.config.runner.operators:
            return True
        return self._extra_authorize is not None and self._extra_authorize(actor, command)

    def set_authorizer(self, authorize: Authorizer | None) -> None:
        """Install the dashboard's user/role check (see engine.access_config)."""
        self._extra_authorize = authorize

    def publish(self, event: Event) -> None:
        """Publish an event through the bus (committed, folded, then delivered)."""
        self.bus.publish(event)

    def health(self) -> dict[str, Any]:
        """Engine, bus, event log and feed status with heartbeat ages, for monitors."""
        now = self.clock.now_ns()
        feed = self.runner.feed
        seq, version, _ = self.store.snapshot()
        feed_info: dict[str, Any] = {"status": "none"}
        if isinstance(feed, FeedBase):
            last = feed.last_event_ns
            age_s = (now - last) / NS_PER_S if last else None
            feed_info = {
                "status": feed.status,
                "last_event_age_s": age_s,
                "published": feed.published,
                "errors": feed.errors,
                "rejected": feed.validator.rejected_total,
                "stale": age_s is not None and age_s > self.config.feed.stale_after_s,
                "halted_by_stall": self._stall_halted,
            }
        beat_age = (now - self._last_heartbeat_ns) / NS_PER_S if self._last_heartbeat_ns else None
        stats = self.bus.stats
        return {
            "engine": {
                "name": self.config.engine.name,
                "runner": self.runner.status,
                "trading": self.store.get_state("trading.state", ACTIVE),
                "heartbeat_age_s": beat_age,
                "run_id": self.run_id,
            },
            "bus": {
                "queue_depth": len(self.bus._inbox),
                "published": stats.published,
                "dispatched": stats.dispatched,
                "subscriber_errors": stats.errors_total,
                "subscribers": self.bus.subscriber_count(),
                "dispatch_busy_s": round(self.bus.dispatch_busy_s, 3),
                "stalled": self._dispatch_stalled(),
            },
            "event_log": {
                "healthy": self.log.healthy,
                "last_error": self.log.last_error,
                "engine_held_by_fault": self.store.storage_fault,
                "last_seq": self.log.last_seq,
                "committed_seq": self.log.committed_seq,
            },
            "state": {"seq": seq, "version": version},
            "feed": feed_info,
            "process": GC_PAUSES.as_dict(),
            **({"relay": self.relay.stats()} if self.relay is not None else {}),
        }

    # -- internals -------------------------------------------------------------------------
    def _snapshot_source(self) -> tuple[int, dict[str, Any]]:
        seq, _, state = self.store.snapshot()
        return seq, state

    def _reconcile(self) -> None:
        self.bus.join(10)
        try:
            self.reconciliation = Reconciler(
                self.bus.publish, self.store, self.broker, self.clock
            ).run()
        except ReconciliationFailed as exc:
            log.error("reconciliation failed, starting halted: %s", exc)
            self.bus.join(10)
            self.risk.halt("engine", f"reconciliation failed: {exc}")
        self.bus.join(10)

    def _on_system(self, event: Event) -> None:
        if isinstance(event, Heartbeat):
            self._last_heartbeat_ns = event.ts_event

    def _housekeep(self) -> None:
        """Snapshots on schedule, the feed-stall halt and the dispatch watchdog; logs while
        the event log cannot write (own thread, every ``HOUSEKEEPING_S``).

        A storage fault holds the engine thread itself (see ``StateStore._wait_durable``):
        nothing trades until writes succeed again."""
        while not self._stopping.wait(HOUSEKEEPING_S):
            try:
                self.snapshotter.maybe_snapshot(self.clock.now_ns())
            except Exception:
                log.exception("periodic snapshot failed; the log is intact, will retry")
            if not self.log.healthy:
                log.error("event log unhealthy (%s): trading must not go on", self.log.last_error)
            try:
                self._check_feed_stall()
                self._check_dispatch()
            except SeamlessError:
                return  # the bus is closed: the engine is stopping

    def _check_feed_stall(self) -> None:
        """Halt trading (a committed ``halt`` command through risk, on the engine thread) once
        the feed has been quiet for ``feed.halt_after_s``; once per stall."""
        limit = self.config.feed.halt_after_s
        feed = self.runner.feed
        if limit <= 0 or not isinstance(feed, FeedBase) or feed.last_event_ns is None:
            return
        age_s = (self.clock.now_ns() - feed.last_event_ns) / NS_PER_S
        if age_s < limit:
            self._stall_halted = False
            return
        if self._stall_halted or self.store.get_state("trading.state", ACTIVE) != ACTIVE:
            return
        self._stall_halted = True
        log.error("feed %s quiet for %.1f s: halting trading", feed.name, age_s)
        self.command("halt", "engine", reason=f"feed stalled: no data for {age_s:.1f} s")

    def _dispatch_stalled(self) -> bool:
        limit = self.config.bus.stall_warn_s
        return limit > 0 and self.bus.dispatch_busy_s > limit

    def _check_dispatch(self) -> None:
        """Watchdog: a dispatch round running longer than ``bus.stall_warn_s`` (a blocking or
        slow subscriber holds the one engine thread) is reported once as ``error_raised``;
        ``health()`` shows it meanwhile. The report waits for room in the inbox rather than
        block this thread behind the stalled engine; it is delivered when the round ends."""
        if self._dispatch_stalled():
            if not self._stall_reported:
                self._stall_reported = True
                self._stall_pending = self.bus.dispatch_busy_s
                log.error(
                    "engine thread busy in one dispatch round for %.1f s", self._stall_pending
                )
        else:
            self._stall_reported = False
        inbox = self.bus._inbox
        if not self._stall_pending or len(inbox._items) >= inbox.capacity:
            return
        busy, self._stall_pending = self._stall_pending, 0.0
        self.bus.publish(
            ErrorRaised(
                component="kernel.watchdog",
                message=f"a dispatch round ran for over {busy:.1f} s "
                f"(bus.stall_warn_s {self.config.bus.stall_warn_s}): a subscriber blocks",
                error_type="DispatchStalled",
                details={"busy_s": round(busy, 3), "queue_depth": len(inbox)},
                ts_event=self.clock.now_ns(),
            )
        )
