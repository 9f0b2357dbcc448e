"""The push bridge: engine-thread events reach one browser session through its own document.

Every session owns one :class:`SessionBridge`. Subscriptions on the shared bus and store are
made through it, so it can dispose of all of them when the session is destroyed. Their
callbacks run on the engine thread (or on an Rx timer thread for the throttled tier) and
must not touch Bokeh models or Panel components there: they only enqueue a small update
closure with :meth:`SessionBridge.post`. The first post after a drain schedules one
``doc.add_next_tick_callback``, called on the session's loop (handed there with the
thread-safe ``IOLoop.add_callback``: see :class:`SessionBridge`); that callback drains
everything queued, inside one ``pn.io.hold`` so a burst of events becomes one websocket
message. Updates posted with a
``key`` replace an older queued update with the same key (the latest P&L wins), and
notifications posted with :meth:`SessionBridge.toast` are merged into at most one toast per
drain (the most severe one, with a count of the others).

One drain per trade, not one per event: a post made on the bus's dispatch thread schedules
the drain only when that dispatch round ends (``EventBus.after_round``), so a fill and the
position and P&L updates the engine derives from it in the same round (committed a few ms
later) go out together; and updates or toasts that the drain's own updates raise (a trade's
toast) are applied in the same drain instead of scheduling another one. Each drain is one
Bokeh patch message, whose cost grows with the size of the session's document.

Toasts are merged and rate limited by the bridge's :class:`~panel_app.toasts.ToastGate`;
work that is the same for every session (formatting an event into a table row) is done once
per event with :func:`~panel_app.push_support.once_per_event`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import IOLoopScheduler
from tornado.ioloop import IOLoop

from panel_app.facade import EventBus, StateStore
from panel_app.push_support import DEADLINES, BridgeStats, one_message
from panel_app.toasts import Notifier, Toast, ToastGate, notify

log = logging.getLogger(__name__)

Update = Callable[[], None]


class SessionBridge:
    """Hands updates from any thread to one session's document and owns its subscriptions.

    ``doc`` is the session's Bokeh Document, or None outside a server (tests, notebooks):
    then updates run at once on the posting thread. Safe to call from any thread.
    ``max_round_wait_s``: the longest a post made during a dispatch round waits for that
    round to end (see :meth:`follow_rounds`) before it is drained anyway.
    ``held_toast_timer``: toasts held back by the rate limit are shown by a timer of their
    own (one more message); a session with a periodic tick passes False and calls
    :meth:`flush_held_toasts` from it instead, so they join that tick's message.
    ``loop``: the session's Tornado IOLoop (default: the current one of the creating thread,
    which for a served session is the server's loop).

    A drain is scheduled on the document from the loop's own thread only. Bokeh's
    ``add_next_tick_callback`` is safe from other threads only while nobody holds the
    document: during a hold it appends the callback's announcement to the held events, which
    the hold's owner on the loop copies and then clears, so an announcement appended in
    between is lost; the callback then never runs and the session never drains again
    (seen here: one session of ten frozen from its first update). Other threads therefore
    hand the scheduling to the loop with ``IOLoop.add_callback``, which is thread-safe.
    """

    def __init__(
        self,
        doc: Any,
        *,
        name: str = "session",
        notifier: Notifier | None = None,
        toast_interval_s: float = 0.5,
        max_round_wait_s: float = 0.05,
        held_toast_timer: bool = True,
        loop: Any = None,
    ) -> None:
        self.doc = doc
        if doc is not None and loop is None:
            loop = IOLoop.current(instance=False)
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None
        self.name = name
        self.stats = BridgeStats()
        self.max_round_wait_s = max_round_wait_s
        self._toast_gate = ToastGate(
            doc=doc,
            stats=self.stats,
            name=name,
            notifier=notifier if notifier is not None else notify,
            interval_s=toast_interval_s,
            timer=held_toast_timer,
        )
        self._lock = threading.Lock()
        self._queue: dict[object, Update] = {}
        self._toasts: list[Toast] = []
        self._counter = 0
        self._scheduled = False  # a drain is scheduled on the session loop (or running)
        self._deferred = False  # a drain will be scheduled when the bus's round ends
        self._bus: Any = None
        self._closed = False
        self._disposables: list[Any] = []

    @property
    def closed(self) -> bool:
        """True once :meth:`dispose` ran; later posts and subscriptions are ignored."""
        return self._closed

    # -- subscriptions ------------------------------------------------------------------------
    def follow_rounds(self, bus: EventBus) -> None:
        """Defer the drain of posts made while ``bus`` dispatches to the end of its round
        (see the module docstring). A bus without ``after_round`` is ignored."""
        if callable(getattr(bus, "after_round", None)):
            self._bus = bus

    def own(self, disposable: Any) -> Any:
        """Keep ``disposable`` (anything with ``dispose()``) to dispose with the session."""
        with self._lock:
            if not self._closed:
                self._disposables.append(disposable)
                return disposable
        disposable.dispose()
        return disposable

    def on_bus(
        self, bus: EventBus, pattern: str, handler: Callable[[Any], None], *, key: str | None = None
    ) -> Any:
        """Immediate tier: ``handler(event)`` on the session's loop for every matching event
        (with ``key``, only the newest of those queued since the last drain)."""
        if self._bus is None:
            self.follow_rounds(bus)
        return self.own(
            bus.subscribe(
                pattern,
                lambda event: self.post(lambda: handler(event), key=key),
                name=f"ui:{self.name}",
            )
        )

    def on_rx(
        self, observable: Observable[Any], handler: Callable[[Any], None], *, key: str | None
    ) -> Any:
        """Throttled tier: ``handler(value)`` on the session's loop for each emitted value.

        ``key`` coalesces: if the session has not drained the previous value yet, only the
        newest is applied (None: every value is applied).
        """

        def on_error(exc: Exception) -> None:
            log.warning("dashboard stream %r of %s failed: %s", key, self.name, exc)

        return self.own(
            observable.subscribe(
                on_next=lambda value: self.post(lambda: handler(value), key=key),
                on_error=on_error,
            )
        )

    def on_store(self, store: StateStore, path: str, handler: Callable[[str, Any], None]) -> Any:
        """``handler(path, value)`` on the session's loop when a store path changes."""
        return self.own(
            store.subscribe(
                path,
                lambda p, value, _event: self.post(lambda: handler(p, value), key=f"store:{p}"),
            )
        )

    # -- hand-over ----------------------------------------------------------------------------
    def post(self, update: Update, *, key: object = None) -> None:
        """Queue ``update`` to run on the session's event loop (any thread; never blocks)."""
        if self.doc is None:
            if not self._closed:
                self._apply([update])
            return
        with self._lock:
            if self._closed:
                return
            self.stats.posted += 1
            if key is None:
                self._counter += 1
                key = self._counter
            elif key in self._queue:
                self.stats.coalesced += 1
                del self._queue[key]  # re-insert: keep arrival order of the newest
            self._queue[key] = update
            schedule = self._claim_drain()
        if schedule:
            self._schedule()

    def toast(self, kind: str, message: str, *, duration: int = 4_000) -> None:
        """Queue a notification (any thread); each drain shows at most one, merged."""
        if self._closed:
            return
        toast = Toast(kind, message, duration)
        if self.doc is None:
            self.stats.toasts_posted += 1
            self._toast_gate.show([toast])
            return
        with self._lock:
            if self._closed:
                return
            self.stats.toasts_posted += 1
            self._toasts.append(toast)
            schedule = self._claim_drain()
        if schedule:
            self._schedule()

    def _claim_drain(self) -> bool:
        """Under the lock, after queueing: True when the caller is to schedule the drain now
        (none is scheduled yet, nor deferred to the end of the bus's dispatch round)."""
        if self._scheduled or self._defer_to_round_end():
            return False
        self._scheduled = True
        return True

    def _defer_to_round_end(self) -> bool:
        """Under the lock, nothing scheduled: on the bus's dispatch thread, ask for the drain
        to be scheduled when the round ends (True); elsewhere schedule now (False)."""
        bus = self._bus
        if bus is None or not bus.on_dispatch_thread:
            return False
        if not self._deferred:
            self._deferred = True
            bus.after_round(self._round_ended)
            DEADLINES.call_at(time.monotonic() + self.max_round_wait_s, self._round_too_long)
        return True

    def _round_too_long(self) -> None:
        """Deadline thread: the round has not ended within ``max_round_wait_s``: drain now."""
        with self._lock:
            if not self._deferred or self._scheduled or self._closed:
                return
            if not (self._queue or self._toasts):
                return
            self._scheduled = True
        self._schedule()

    def _round_ended(self) -> None:
        """Dispatch thread, end of a round in which this session was posted to."""
        with self._lock:
            self._deferred = False
            if self._scheduled or self._closed or not (self._queue or self._toasts):
                return
            self._scheduled = True
        self._schedule()

    def _schedule(self) -> None:
        """Have ``_drain`` run on the session's loop (``_scheduled`` is already set)."""
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._schedule_on_loop()
            return
        try:
            self._loop.add_callback(self._schedule_on_loop)
        except Exception as exc:  # the loop is closed: the server is stopping
            self._not_scheduled(exc)

    def _schedule_on_loop(self) -> None:
        try:
            self.doc.add_next_tick_callback(self._drain)
        except Exception as exc:  # the session is going away; its dispose will follow
            self._not_scheduled(exc)

    def _not_scheduled(self, exc: Exception) -> None:
        log.debug("cannot schedule an update for %s: %s", self.name, exc)
        with self._lock:
            self._scheduled = False

    #: Passes over the queue in one drain: updates posted while it runs (a toast raised by an
    #: update, an event arriving meanwhile) join it instead of costing another message.
    MAX_PASSES = 3

    def _drain(self) -> None:
        start = time.perf_counter_ns()
        if self._closed:
            with self._lock:
                self._scheduled = False
            return
        toasts: list[Toast] = []
        again = False
        # ``_scheduled`` stays True while the drain runs: posts from any thread only queue.
        with one_message(self.doc):
            for _ in range(self.MAX_PASSES):
                with self._lock:
                    updates = list(self._queue.values())
                    self._queue.clear()
                    toasts += self._toasts
                    self._toasts = []
                    if self._closed:
                        self._scheduled = False
                        return
                    if not updates:
                        self._scheduled = False
                        break
                self._run(updates)
            else:
                with self._lock:
                    toasts += self._toasts
                    self._toasts = []
                    again = bool(self._queue) and not self._closed
                    self._scheduled = again
            self._toast_gate.show(toasts)
        self.stats.drains += 1
        self.stats.drain_ns += time.perf_counter_ns() - start
        if again:
            self._schedule()

    def _apply(self, updates: list[Update]) -> None:
        start = time.perf_counter_ns()
        self._run(updates)
        self.stats.drains += 1
        self.stats.drain_ns += time.perf_counter_ns() - start

    def _run(self, updates: list[Update]) -> None:
        for update in updates:
            try:
                update()
                self.stats.applied += 1
            except Exception:
                self.stats.failed += 1
                log.exception("dashboard update failed in %s", self.name)

    def flush_held_toasts(self) -> None:
        """Session loop: show the toasts held back by the rate limit now, merged into one
        (call inside the caller's ``hold``; a no-op when none are held)."""
        self._toast_gate.flush()

    # -- teardown -----------------------------------------------------------------------------
    def dispose(self) -> None:
        """Dispose of every subscription and drop queued updates (idempotent, any thread)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            disposables, self._disposables = self._disposables, []
            self._queue.clear()
            self._toasts.clear()
            self._toast_gate.close()
        for disposable in reversed(disposables):
            try:
                disposable.dispose()
            except Exception:
                log.exception("disposing a subscription of %s failed", self.name)


def loop_scheduler(bridge: SessionBridge) -> abc.SchedulerBase | None:
    """Timers on the session's running Tornado loop (None outside a served session: then
    Rx's default timer threads): a slider's debounce then costs no thread per move, and its
    value comes out on the loop, like the slider's own changes."""
    if bridge.doc is None:
        return None
    loop = IOLoop.current(instance=False)
    running = getattr(getattr(loop, "asyncio_loop", None), "is_running", None)
    if loop is None or running is None or not running():
        return None
    return IOLoopScheduler(loop)
