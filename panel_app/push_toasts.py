"""Notifications pushed to one session: merged and rate limited.

A session's bridge (:class:`~panel_app.push.SessionBridge`) queues toasts with its updates;
each drain hands them to its :class:`ToastGate`, which shows at most one per interval: the
most severe, with the newest others and a count of the rest (:func:`merge_toasts`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from panel_app.push_support import BridgeStats, one_message

log = logging.getLogger(__name__)

#: Toast kinds, least to most severe (the merged toast of a drain takes the most severe).
TOAST_SEVERITY = {"info": 0, "success": 1, "warning": 2, "error": 3}

Notifier = Callable[[str, str, int], None]


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


@dataclass(eq=False, kw_only=True)
class ToastGate:
    """Shows one session's toasts through ``notifier`` (e.g. :func:`panel_notify`).

    Adding a toast adds a model to the document, which makes Bokeh walk all of the
    document's models: so at most one toast per ``interval_s``; the ones in between are held
    and merged (errors and sticky toasts are never held). Held toasts are shown by a timer of
    their own (one more message) when ``timer`` is set; otherwise the session calls
    :meth:`flush` from a periodic tick of its own. Without a document (``doc`` None: tests,
    notebooks) nothing is held. Used on the session's loop only.
    """

    doc: Any
    stats: BridgeStats
    name: str
    notifier: Notifier
    interval_s: float
    timer: bool
    closed: bool = field(default=False, init=False)
    _held: list[Toast] = field(default_factory=list, init=False)
    _next_at: float = field(default=0.0, init=False)
    _timer_set: bool = field(default=False, init=False)

    def show(self, toasts: list[Toast]) -> None:
        """Show ``toasts`` (and any held ones) merged into one, or hold them all for later."""
        toasts = [*self._held, *toasts]
        self._held = []
        if not toasts:
            return
        now = time.monotonic()
        urgent = any(t.kind == "error" or t.duration == 0 for t in toasts)
        if self.doc is not None and not urgent and now < self._next_at:
            self._held = toasts
            if self.timer and not self._timer_set:
                self._timer_set = True
                delay_ms = max(1, int((self._next_at - now) * 1000))
                try:
                    self.doc.add_timeout_callback(self._flush_on_timer, delay_ms)
                except Exception as exc:  # the session is going away
                    log.debug("cannot schedule held toasts for %s: %s", self.name, exc)
            return
        self._next_at = now + self.interval_s
        toast = merge_toasts(toasts)
        if toast is None:
            return
        try:
            self.notifier(toast.kind, toast.message, toast.duration)
            self.stats.toasts_shown += 1
        except Exception:
            log.exception("notification failed in %s", self.name)

    def _flush_on_timer(self) -> None:
        self._timer_set = False
        if self.closed or not self._held:
            return
        with one_message(self.doc):
            self.flush()

    def flush(self) -> None:
        """Show the held toasts now, merged into one (call inside the caller's ``hold``; a
        no-op when none are held)."""
        if self.closed or not self._held:
            return
        self._next_at = 0.0
        self.show([])

    def close(self) -> None:
        """Drop the held toasts and show nothing more (the session is going away)."""
        self.closed = True
        self._held = []


def panel_notify(kind: str, message: str, duration: int) -> None:
    """A toast in the current Panel session (no-op outside a served session)."""
    import panel as pn

    area = pn.state.notifications
    if area is None:
        return
    getattr(area, kind)(message, duration=duration)
