"""The push bridge: engine-thread events reach one browser session through its own document.

Every session owns one :class:`SessionBridge`. Subscriptions on the shared bus and store are
made through it, so it can dispose of all of them when the session is destroyed. Their
callbacks run on the engine thread (or on an Rx timer thread for the throttled tier) and
must not touch Bokeh models or Panel components there: they only enqueue a small update
closure with :meth:`SessionBridge.post`. The first post after a drain schedules one
``doc.add_next_tick_callback`` (the one Document method Bokeh allows from other threads);
on the session's event loop that callback drains everything queued, inside one
``pn.io.hold`` so a burst of events becomes one websocket message. Updates posted with a
``key`` replace an older queued update with the same key (the latest P&L wins), and
notifications posted with :meth:`SessionBridge.toast` are merged into at most one toast per
drain (the most severe one, with a count of the others).

Work that is the same for every session (formatting an event into a table row) is done once
per event with :func:`once_per_event`; every session's bridge receives the same result.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from panel.io.document import hold
from panel.io.state import set_curdoc
from reactivex import Observable

log = logging.getLogger(__name__)

Update = Callable[[], None]
T = TypeVar("T")

#: Toast kinds, least to most severe (the merged toast of a drain takes the most severe).
TOAST_SEVERITY = {"info": 0, "success": 1, "warning": 2, "error": 3}

_ONCE_LOCK = threading.Lock()
_ONCE: collections.OrderedDict[tuple[int, str], tuple[object, Any]] = collections.OrderedDict()
_ONCE_MAX = 512


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
    """

    def __init__(
        self,
        doc: Any,
        *,
        name: str = "session",
        notifier: Callable[[str, str, int], None] | None = None,
        toast_interval_s: float = 0.5,
    ) -> None:
        self.doc = doc
        self.name = name
        self.stats = BridgeStats()
        self.notifier = notifier if notifier is not None else _panel_notify
        self.toast_interval_s = toast_interval_s
        self._held_toasts: list[Toast] = []
        self._next_toast_at = 0.0
        self._toast_timer = False
        self._lock = threading.Lock()
        self._queue: dict[object, Update] = {}
        self._toasts: list[Toast] = []
        self._counter = 0
        self._scheduled = False
        self._closed = False
        self._disposables: list[Any] = []

    @property
    def closed(self) -> bool:
        """True once :meth:`dispose` ran; later posts and subscriptions are ignored."""
        return self._closed

    # -- subscriptions ------------------------------------------------------------------------
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
            self._scheduled = True
        self._schedule()

    def _schedule(self) -> None:
        try:
            self.doc.add_next_tick_callback(self._drain)
        except Exception as exc:  # the session is going away; its dispose will follow
            log.debug("cannot schedule an update for %s: %s", self.name, exc)
            with self._lock:
                self._scheduled = False

    def _drain(self) -> None:
        start = time.perf_counter_ns()
        with self._lock:
            updates = list(self._queue.values())
            self._queue.clear()
            toasts, self._toasts = self._toasts, []
            self._scheduled = False
            if self._closed:
                return
        with set_curdoc(self.doc), hold(self.doc):
            self._run(updates)
            self._show_toasts(toasts)
        self.stats.drains += 1
        self.stats.drain_ns += time.perf_counter_ns() - start

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
            if not self._toast_timer:
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
        self._next_toast_at = 0.0
        with set_curdoc(self.doc), hold(self.doc):
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
