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

Work that is the same for every session (formatting an event into a table row) is done once
per event with :func:`once_per_event`; every session's bridge receives the same result.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from panel.io.document import hold
from panel.io.state import set_curdoc
from reactivex import Observable, abc
from reactivex.scheduler.eventloop import IOLoopScheduler
from tornado.ioloop import IOLoop

log = logging.getLogger(__name__)

Update = Callable[[], None]
T = TypeVar("T")

#: Toast kinds, least to most severe (the merged toast of a drain takes the most severe).
TOAST_SEVERITY = {"info": 0, "success": 1, "warning": 2, "error": 3}

_ONCE_LOCK = threading.Lock()
_ONCE: collections.OrderedDict[tuple[int, str], tuple[object, Any]] = collections.OrderedDict()
#: Entries kept: at the feed's full rate (~500 events/s, each SSE client's frame among them)
#: an entry lives a few seconds, far longer than any session or client takes to use it.
_ONCE_MAX = 4096


@contextlib.contextmanager
def one_message(doc: Any) -> Iterator[None]:
    """Session loop: every change made inside goes to ``doc``'s page as one Bokeh message
    (``doc`` made current, its events held); without a document, changes apply as made."""
    if doc is None:
        yield
        return
    with set_curdoc(doc), hold(doc):
        yield


def once_per_event(event: object, what: str, compute: Callable[[], T]) -> T:
    """``compute()`` for ``event``, computed once however many sessions ask (any thread).

    Every session's subscription receives the same event object from the bus, so the first
    session to ask formats it and the others reuse the result. Entries are keyed by the
    event's identity (checked, so a recycled ``id`` never returns a stale value) and bounded.
    """
    key = (id(event), what)
    with _ONCE_LOCK:
        found = _ONCE.get(key)
        if found is not None and found[0] is event:
            return found[1]
    value = compute()
    with _ONCE_LOCK:
        _ONCE[key] = (event, value)
        while len(_ONCE) > _ONCE_MAX:
            _ONCE.popitem(last=False)
    return value


class Toast:
    """A queued notification: ``kind`` is info/success/warning/error; duration 0 = sticky."""

    __slots__ = ("duration", "kind", "message")

    def __init__(self, kind: str, message: str, duration: int) -> None:
        self.kind = kind
        self.message = message
        self.duration = duration


def merge_toasts(toasts: list[Toast], *, lines: int = 4) -> Toast | None:
    """One toast for many: the kind of the most severe, its newest message first, then the
    newest of the others (at most ``lines`` messages in all, then a count of the rest).

    A sticky toast (duration 0) among them keeps the merged toast sticky.
    """
    if not toasts:
        return None
    if len(toasts) == 1:
        return toasts[0]
    top = max(TOAST_SEVERITY.get(t.kind, 0) for t in toasts)
    chosen = [t for t in toasts if TOAST_SEVERITY.get(t.kind, 0) == top][-1]
    rest = [t for t in reversed(toasts) if t is not chosen]
    shown = [chosen.message, *(t.message for t in rest[: max(0, lines - 1)])]
    hidden = len(toasts) - len(shown)
    if hidden:
        shown.append(f"+{hidden} more")
    sticky = any(t.duration == 0 for t in toasts)
    durations = [t.duration for t in toasts if t.duration > 0]
    duration = 0 if sticky else max(durations, default=chosen.duration)
    return Toast(chosen.kind, " | ".join(shown), duration)


class _Deadlines:
    """One daemon thread that calls ``fn()`` at ``when`` (time.monotonic) for every bridge:
    caps how long a drain waits for the end of a dispatch round (a round held by a slow
    commit must not hold the page)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._ids), fn))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ui-round-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("dashboard: a drain deadline failed")


_DEADLINES = _Deadlines()


class BridgeStats:
    """Counters of one bridge (read from any thread; exact enough for benchmarks)."""

    def __init__(self) -> None:
        self.posted = 0
        self.coalesced = 0
        self.drains = 0
        self.applied = 0
        self.failed = 0
        self.drain_ns = 0
        self.toasts_posted = 0
        self.toasts_shown = 0

    def as_dict(self) -> dict[str, float]:
        """The counters, plus the mean server-side cost of one applied update and of one drain
        in microseconds (a drain's cost includes flushing the held document changes)."""
        per_update = self.drain_ns / self.applied / 1e3 if self.applied else 0.0
        per_drain = self.drain_ns / self.drains / 1e3 if self.drains else 0.0
        return {
            "posted": self.posted,
            "coalesced": self.coalesced,
            "drains": self.drains,
            "applied": self.applied,
            "failed": self.failed,
            "toasts_posted": self.toasts_posted,
            "toasts_shown": self.toasts_shown,
            "us_per_update": round(per_update, 1),
            "us_per_drain": round(per_drain, 1),
        }


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
        notifier: Callable[[str, str, int], None] | None = None,
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
        self.notifier = notifier if notifier is not None else _panel_notify
        self.toast_interval_s = toast_interval_s
        self.max_round_wait_s = max_round_wait_s
        self.held_toast_timer = held_toast_timer
        self._held_toasts: list[Toast] = []
        self._next_toast_at = 0.0
        self._toast_timer = False
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
    def follow_rounds(self, bus: Any) -> None:
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
        self, bus: Any, pattern: str, handler: Callable[[Any], None], *, key: str | None = None
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

    def on_store(self, store: Any, path: str, handler: Callable[[str, Any], None]) -> Any:
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
            if self._scheduled:
                return
            if self._defer_to_round_end():
                return
            self._scheduled = True
        self._schedule()

    def toast(self, kind: str, message: str, *, duration: int = 4_000) -> None:
        """Queue a notification (any thread); each drain shows at most one, merged."""
        if self._closed:
            return
        toast = Toast(kind, message, duration)
        if self.doc is None:
            self.stats.toasts_posted += 1
            self._show_toasts([toast])
            return
        with self._lock:
            if self._closed:
                return
            self.stats.toasts_posted += 1
            self._toasts.append(toast)
            if self._scheduled:
                return
            if self._defer_to_round_end():
                return
            self._scheduled = True
        self._schedule()

    def _defer_to_round_end(self) -> bool:
        """Under the lock, nothing scheduled: on the bus's dispatch thread, ask for the drain
        to be scheduled when the round ends (True); elsewhere schedule now (False)."""
        bus = self._bus
        if bus is None or not bus.on_dispatch_thread:
            return False
        if not self._deferred:
            self._deferred = True
            bus.after_round(self._round_ended)
            _DEADLINES.call_at(time.monotonic() + self.max_round_wait_s, self._round_too_long)
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
            self._show_toasts(toasts)
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

    def _show_toasts(self, toasts: list[Toast]) -> None:
        """Session loop. Adding a toast adds a model to the document, which makes Bokeh walk
        all of the document's models: so at most one toast per ``toast_interval_s``; the
        ones in between are held and merged (errors and sticky toasts are never held)."""
        toasts = [*self._held_toasts, *toasts]
        self._held_toasts = []
        if not toasts:
            return
        now = time.monotonic()
        urgent = any(t.kind == "error" or t.duration == 0 for t in toasts)
        if self.doc is not None and not urgent and now < self._next_toast_at:
            self._held_toasts = toasts
            if self.held_toast_timer and not self._toast_timer:
                self._toast_timer = True
                delay_ms = max(1, int((self._next_toast_at - now) * 1000))
                try:
                    self.doc.add_timeout_callback(self._flush_held_toasts, delay_ms)
                except Exception as exc:  # the session is going away
                    log.debug("cannot schedule held toasts for %s: %s", self.name, exc)
            return
        self._next_toast_at = now + self.toast_interval_s
        toast = merge_toasts(toasts)
        if toast is None:
            return
        try:
            self.notifier(toast.kind, toast.message, toast.duration)
            self.stats.toasts_shown += 1
        except Exception:
            log.exception("notification failed in %s", self.name)

    def _flush_held_toasts(self) -> None:
        self._toast_timer = False
        if self._closed or not self._held_toasts:
            return
        with one_message(self.doc):
            self.flush_held_toasts()

    def flush_held_toasts(self) -> None:
        """Session loop: show the toasts held back by the rate limit now, merged into one
        (call inside the caller's ``hold``; a no-op when none are held)."""
        if self._closed or not self._held_toasts:
            return
        self._next_toast_at = 0.0
        self._show_toasts([])

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
            self._held_toasts = []
        for disposable in reversed(disposables):
            try:
                disposable.dispose()
            except Exception:
                log.exception("disposing a subscription of %s failed", self.name)


def _panel_notify(kind: str, message: str, duration: int) -> None:
    """A toast in the current Panel session (no-op outside a served session)."""
    import panel as pn

    area = pn.state.notifications
    if area is None:
        return
    getattr(area, kind)(message, duration=duration)


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
