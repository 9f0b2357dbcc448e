"""The composition root: builds every engine component from config, in one of four modes.

Modes (:class:`Mode`), one wiring:

* ``live``     - a live feed (synthetic, websocket) on the wall clock; threaded bus.
* ``replay``   - a recorded feed (sample, csv, parquet) replayed through the same threaded
  engine on the *data's* clock: the engine thread moves the clock to each market event's time,
  so fills, P&L days and the daily-loss window are those of the data. A restart resumes after
  the last market time it handled.
* ``backtest`` - the same components on a synchronous bus and the data's clock, fed by the
  caller (:mod:`engine.backtest`): full speed, no threads, no broker file.
* ``mirror``   - no trading components: a read-only copy of a book that another node trades
  (:class:`engine.mirror.Mirror`).

``Kernel(config, mode=...)`` opens the event log, restores the state (snapshot + replay),
wires the bus, store, broker, risk, portfolio, P&L, strategies and runner, and starts
nothing. ``start()`` attaches them; live and replay kernels also record the run, reconcile
with the broker (a failure starts the engine halted, never trading on a wrong position),
start heartbeats and housekeeping and, if configured, the runner. ``stop()`` is a clean stop:
runner stopped, everything dispatched, a final snapshot, the run marked ended, the log closed.

This is the one place that reads config and constructs components (with its steps in
:mod:`engine.wiring` and :mod:`engine.storage`); they receive their collaborators. The causal
order of one market event (docs/architecture.md) comes from the bus stages the components
subscribe in.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Any

from reactivex import abc

from engine.access import make_authorizer
from engine.config import SeamlessConfig
from engine.core import build_core
from engine.feeds import build_feed, is_replay, replay_table
from engine.housekeeping import Housekeeping, health
from engine.notify import Notifications, build_notifications
from engine.reconcile import Reconciler, ReconciliationFailed, ReconciliationResult
from engine.runner import STARTING, STOPPED
from engine.storage import Fence, newest_market_ns, open_recorder, restore_state, state_at
from engine.wiring import build_trading, check_plugins, follow_data_clock
from persistence import CLEAN, Snapshotter
from persistence.recorder import Recorder
from state import MemoryJournal
from state.journal import Journal, ReplicaJournal
from streams import topics
from streams.clock import NS_PER_S, Clock, LiveClock, ManualClock
from streams.errors import ConfigError, SeamlessError
from streams.events import CommandIssued, Event
from streams.sources import FeedBase, ReplayTable

log = logging.getLogger(__name__)

Authorizer = Callable[[str, str], bool]


class Mode(enum.StrEnum):
    """How a kernel runs (see the module doc)."""

    LIVE = "live"
    REPLAY = "replay"
    BACKTEST = "backtest"
    MIRROR = "mirror"


def mode_for(config: SeamlessConfig) -> Mode:
    """The mode ``seamless run``/``serve`` use for ``config``: replay for recorded data."""
    return Mode.REPLAY if is_replay(config.feed) else Mode.LIVE


class Kernel:
    """One engine instance: the facade the CLI, the dashboard, backtests and notebooks use.

    Public collaborators: ``config``, ``mode``, ``clock`` (the engine's time: the data's in
    replays and backtests), ``wall_clock``, ``log`` (the journal: a Recorder except in
    in-memory backtests), ``bus``, ``store``, ``broker``, ``risk``, ``portfolio``, ``pnl``,
    ``host`` (strategies), ``runner``.

    ``clock`` and ``journal`` may be injected (tests, backtests); by default a live kernel
    uses the wall clock, a replay the data's clock, and the log comes from ``storage``.
    """

    def __init__(
        self,
        config: SeamlessConfig,
        *,
        mode: Mode | None = None,
        clock: Clock | None = None,
        journal: Journal | None = None,
        authorize: Authorizer | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.config = config
        self.mode = Mode(mode) if mode is not None else mode_for(config)
        self.wall_clock: Clock = LiveClock()
        self._extra_authorize: Authorizer | None = (
            authorize if authorize is not None else make_authorizer(config.access)
        )
        logging.getLogger().setLevel(config.engine.log_level)
        self.run_id: str | None = None
        self.reconciliation: ReconciliationResult | None = None
        self.relay: Any = None  # the JetStream outbox relay (``bus.transport: jetstream``)
        self.housekeeping: Housekeeping | None = None
        self._subscriptions: list[abc.DisposableBase] = []
        self._started = False
        self._stopped = False
        self._ready = False  # start() has returned and stop() has not begun
        self._replay: ReplayTable | None = None

        check_plugins(config)  # a broken plugin fails here too, before the log is touched
        if self.mode is Mode.REPLAY:  # a bad file fails here, before the log is touched
            self._replay = replay_table(config.feed)
        #: Webhooks/Telegram from the committed log (live and replay; a missing token fails here)
        self.notifications: Notifications | None = (
            build_notifications(config) if self.mode in (Mode.LIVE, Mode.REPLAY) else None
        )
        self.log: Any = journal if journal is not None else self._open_log(fence)
        try:
            self.restored = restore_state(self.log)
            self.clock: Clock = clock if clock is not None else self._default_clock()
            self._build()
        except BaseException:
            self._close_log()
            raise

    @classmethod
    def from_config(cls, config: SeamlessConfig, **kwargs: Any) -> Kernel:
        """Build an engine from a validated config (see :func:`engine.config.load_config`)."""
        return cls(config, **kwargs)

    # -- construction ------------------------------------------------------------------------
    def _open_log(self, fence: Fence | None) -> Journal:
        if self.mode is Mode.BACKTEST:
            return MemoryJournal()  # a backtest never writes to the configured (live) log
        return open_recorder(self.config.storage, fence=fence)

    def _default_clock(self) -> Clock:
        if self.mode is Mode.REPLAY:
            resume = self.last_market_ns()
            first = self._replay.first_ts if self._replay is not None else None
            start = resume or (max(first - NS_PER_S, 0) if first else 0)
            return ManualClock(start)
        if self.mode is Mode.BACKTEST:
            return ManualClock(self.last_market_ns())
        return LiveClock()

    def last_market_ns(self) -> int:
        """The time of the newest market data in the restored state (0 if none)."""
        return newest_market_ns(self.restored.state.get("prices", {}))

    def _build(self) -> None:
        config, mode = self.config, self.mode
        mirror = mode is Mode.MIRROR
        #: What the store commits to: the log, or for a mirror a replica of the book's seqs.
        self.journal: Journal = ReplicaJournal(self.restored.seq) if mirror else self.log
        self.core = build_core(
            journal=self.journal,
            clock=self.clock,
            view_clock=self.wall_clock if mode is Mode.REPLAY else self.clock,
            threaded=mode is not Mode.BACKTEST,
            starting_cash=0.0 if mirror else config.state.starting_cash,
            owners={"engine": [""]} if mirror else config.state.owners,
            view_interval_s=config.state.view_interval_s,
            live_views=mode is not Mode.BACKTEST,
            durable_before_visible=mode is not Mode.BACKTEST,
            capacity=config.bus.capacity,
            max_batch=config.bus.max_batch,
            initial_state=self.restored.state,
        )
        self.bus = self.core.bus
        self.store = self.core.store
        self.bus.join(10)  # the starting-cash deposit of a new log is folded before anyone reads
        self.snapshotter: Snapshotter | None = None
        if isinstance(self.log, Recorder) and not mirror:
            self.snapshotter = Snapshotter(
                self.log,
                self._snapshot_source,
                interval_s=config.storage.snapshot_interval_s,
                every_events=config.storage.snapshot_every_events,
                seq_source=lambda: self.store.last_seq,
                last_seq=self.restored.snapshot_seq or -1,
            )
        if not mirror:
            self._build_trading()

    def _build_trading(self) -> None:
        trading = build_trading(
            self.config,
            self.bus,
            self.store,
            self.clock,
            feed_factory=None if self.mode is Mode.BACKTEST else self._make_feed,
            authorize=self.authorize,
        )
        self.broker, self.risk, self.portfolio = trading.broker, trading.risk, trading.portfolio
        self.pnl, self.host, self.runner = trading.pnl, trading.host, trading.runner

    def _make_feed(self) -> FeedBase | None:
        """A new feed for each runner start: a replay resumes after the last market time."""
        resume = self.last_market_now() if self.mode is Mode.REPLAY else None
        return build_feed(
            self.config.feed,
            self.bus.publish,
            self.wall_clock,
            offer=self.bus.offer,
            table=self._replay,
            resume_after_ns=resume or None,
        )

    def last_market_now(self) -> int:
        """The time of the newest market data in the current state (0 if none)."""
        return newest_market_ns(self.store.get_state("prices"))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Kernel:
        """Attach the components; live and replay kernels also record the run, reconcile,
        start heartbeats, housekeeping, notifications (``notify``) and (``runner.autostart``)
        trading."""
        if self._started:
            return self
        self._started = True
        if self.mode is Mode.MIRROR:
            raise ConfigError("a mirror kernel is started by engine.mirror.Mirror")
        if isinstance(self.log, Recorder):
            self.run_id = self.log.start_run(self.config.config_hash())
        if self.mode in (Mode.REPLAY, Mode.BACKTEST):
            self._subscriptions.extend(follow_data_clock(self.bus, self.clock, self.mode))
        for component in (self.broker, self.risk, self.portfolio, self.pnl, self.host):
            self._subscriptions.extend(component.attach(self.bus))
        if self.mode is Mode.BACKTEST:
            self.host.start()  # its caller drives a backtest: no runner, no commands
            self._ready = True
            return self
        self._subscriptions.extend(self.runner.attach(self.bus))
        self.housekeeping = Housekeeping(self)
        self._subscriptions.append(
            self.bus.subscribe(
                topics.ALL_SYSTEM, self.housekeeping.on_system, name="kernel.heartbeats"
            )
        )
        self._reconcile()
        self.runner.start_heartbeats()
        self.housekeeping.start()
        if self.notifications is not None and isinstance(self.log, Recorder):
            self.notifications.start(
                self.log, self.restored.seq, event_time_is_wall=self.mode is Mode.LIVE
            )
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
        self._ready = True
        return self

    @property
    def ready(self) -> bool:
        """True from the end of :meth:`start` (restored, reconciled, heartbeats and runner
        started) until :meth:`stop` begins: what ``READY=1`` and ``/readyz`` report."""
        return self._ready

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has begun (the stop may still be running)."""
        return self._stopped

    @property
    def data_finished(self) -> bool:
        """A replay that does not loop has handed in all its data and the engine handled it."""
        feed = self.runner.feed if self.mode is Mode.REPLAY else None
        if not isinstance(feed, FeedBase) or feed.alive or feed.status != "finished":
            return False
        return self.bus.join(0.0)

    def stop(self, how: str = CLEAN) -> None:
        """Stop cleanly: runner stopped, queue drained, final snapshot, run ended, log closed."""
        if self._stopped:
            return
        self._stopped = True
        self._ready = False
        try:
            if self._started and self.mode is Mode.BACKTEST:
                self.host.stop()
            elif self._started:
                self._stop_live()
            for sub in self._subscriptions:
                sub.dispose()
            self.bus.stop()
            self.log.flush()
            if self.snapshotter is not None and self._started:
                self.snapshotter.snapshot_now(created_at_ns=self.wall_clock.now_ns())
            if self.run_id is not None:
                self.log.end_run(self.run_id, how)
        finally:
            if self.notifications is not None:
                self.notifications.stop()  # after the final flush: delivers the tail it can
            if self.relay is not None:
                try:
                    self.log.flush()  # commit the tail, so the relay sends it before stopping
                except SeamlessError:
                    log.exception("final flush before stopping the relay failed")
                self.relay.stop()
            self._close_log()

    def _stop_live(self) -> None:
        if self.runner.lifecycle.allowed("stop"):
            self.command("stop", "engine")
        self.bus.join(10)
        self.runner.stop_heartbeats()
        if self.runner.feed is not None:
            self.runner.feed.stop()
        self.bus.join(10)
        if self.housekeeping is not None:
            self.housekeeping.stop()

    def _close_log(self) -> None:
        close = getattr(self.log, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Kernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- facade ------------------------------------------------------------------------------
    def command(self, command: str, actor: str, **args: Any) -> CommandIssued:
        """Publish an operator command as ``actor`` (audited; refused without the right)."""
        return self.runner.command(command, actor, **args)

    def authorize(self, actor: str, command: str) -> bool:
        """May ``actor`` issue ``command``? System actors, then users with the operator role."""
        if actor in self.config.runner.operators:
            return True
        return self._extra_authorize is not None and self._extra_authorize(actor, command)

    def set_authorizer(self, authorize: Authorizer | None) -> None:
        """Install the dashboard's user/role check (see engine.access)."""
        self._extra_authorize = authorize

    def publish(self, event: Event) -> None:
        """Publish an event through the bus (committed, folded, then delivered)."""
        self.bus.publish(event)

    def health(self) -> dict[str, Any]:
        """Engine, bus, event log and feed status with heartbeat ages, for monitors."""
        return health(self, self.housekeeping)

    # -- internals ---------------------------------------------------------------------------
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

    def state_at(self, seq: int) -> dict[str, Any]:
        """Time travel: the state after every event up to ``seq``, as plain dicts (see
        :func:`engine.storage.state_at`: snapshot + tail, never the whole log; any thread)."""
        return state_at(self.log, seq)
