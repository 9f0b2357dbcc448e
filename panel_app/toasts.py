"""A session's toasts: which events raise them, how a drain's toasts merge, and a cheap stack
that shows them.

:func:`event_toast` says which engine events raise a toast in every session. A session's bridge
(:class:`~panel_app.push.SessionBridge`) queues toasts with its updates; each drain hands them
to its :class:`ToastGate`, which shows at most one per interval: the most severe, with the
newest others and a count of the rest (:func:`merge_toasts`).

Why :class:`ToastStack` and not Panel's notification area: Panel's area adds a new Bokeh model
for every toast, and adding a model makes Bokeh walk every model of the session's document
(``DocumentModelManager.recompute``): with a dashboard of tables and charts that is the most
expensive thing a push can do, and a busy engine raises several toasts a second in every
session. Here the toasts are one HTML pane whose text is re-rendered: a string property change,
no model walk. Each toast is hidden by CSS when its duration is over: a zero-length animation
whose delay is computed from when the toast was raised, so re-rendering does not restart it (a
fade would cost every open page frames to draw in software); sticky toasts (duration 0, e.g. a
daily-loss breach) stay until the user dismisses them with the "Dismiss" button.
"""

from __future__ import annotations

import html
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import panel as pn

from panel_app.push_support import BridgeStats, one_message
from panel_app.views.live_panes import LiveHTML
from streams.events import (
    CommandRefused,
    DailyLossBreached,
    DataDropped,
    ErrorRaised,
    Event,
    PositionClosed,
    RunnerStatusChanged,
    TradeExecuted,
    TradingStateChanged,
)

log = logging.getLogger(__name__)

#: How long a toast stays (ms); 0 = until dismissed.
SHORT, LONG, STICKY = 4_000, 10_000, 0


def notify(kind: str, message: str, duration: int = SHORT) -> None:
    """A toast in the current Panel session: what a user's own action caused, and the default
    notifier of a session's bridge (no-op outside a served session)."""
    area = pn.state.notifications
    if area is None:
        return
    getattr(area, kind)(message, duration=duration)


def event_toast(event: Event) -> tuple[str, str, int] | None:
    """The toast an engine event raises in every session: ``(kind, message, duration_ms)``,
    or None for an event that raises none."""
    if isinstance(event, TradeExecuted):
        trade = f"{event.side.upper()} {event.qty:g} {event.symbol} @ {event.price:,.2f}"
        return "info", f"Trade {trade} ({event.strategy})", SHORT
    if isinstance(event, PositionClosed):
        return (
            "success",
            f"Position {event.symbol} closed, realized {event.realized_pnl:,.2f}",
            SHORT,
        )
    if isinstance(event, DailyLossBreached):
        return (
            "error",
            f"Daily loss limit breached: P&L {event.daily_pnl:,.2f} < -{event.limit:,.2f}; "
            f"action: {event.action}",
            STICKY,
        )
    if isinstance(event, TradingStateChanged):
        kind = "warning" if event.state != "active" else "success"
        return kind, f"Trading {event.state}: {event.reason or event.actor}", SHORT
    if isinstance(event, RunnerStatusChanged):
        return "info", f"Runner {event.previous} -> {event.status} ({event.reason})", SHORT
    if isinstance(event, ErrorRaised):
        return "error", f"Error in {event.component}: {event.message}", LONG
    if isinstance(event, DataDropped):
        return (
            "warning",
            f"Market data dropped: {event.count:,} events from {event.source} "
            f"({event.total:,} in all); the engine fell behind the feed",
            LONG,
        )
    if isinstance(event, CommandRefused):
        return (
            "warning",
            f"Command {event.command!r} by {event.actor} refused: {event.reason}",
            SHORT,
        )
    return None


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
    """Shows one session's toasts through ``notifier`` (:func:`notify`, or a session's
    :meth:`ToastStack.show`).

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


TOAST_CSS = """
.sl-toast { margin: 0 0 8px 0; padding: 10px 14px; border-radius: 4px; color: #fff;
            font-size: 14px; box-shadow: 0 2px 6px rgba(0,0,0,.25); word-wrap: break-word; }
.sl-toast-info { background: #1e88e5; }
.sl-toast-success { background: #2e7d32; }
.sl-toast-warning { background: #ef6c00; }
.sl-toast-error { background: #c62828; }
.sl-toast-more { margin: 0 0 8px 4px; font-size: 12px; color: #555; }
.sl-fade { animation-name: sl-hide; animation-duration: 0s; animation-fill-mode: forwards; }
@keyframes sl-hide { to { visibility: hidden; } }
"""


class ToastStack:
    """The toasts of one session (session loop only). ``show`` is the bridge's notifier."""

    def __init__(self, *, max_toasts: int = 3) -> None:
        self._max = max_toasts
        self._toasts: deque[tuple[str, str, float, int]] = deque()
        #: Toasts pushed out by newer ones since the stack was last empty (shown as a count).
        self.overflow = 0
        self.pane = LiveHTML("", stylesheets=[TOAST_CSS], css_classes=["sl-toasts"])
        self.dismiss = pn.widgets.Button(label="Dismiss alerts", visible=False, width=140)
        self.dismiss.on_click(lambda _event: self.clear_sticky())
        self.shown = 0
        self._html = ""

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.pane, self.dismiss, styles=_FIXED, width=340, margin=0)

    def show(self, kind: str, message: str, duration_ms: int) -> None:
        """Raise a toast; ``duration_ms`` 0 keeps it until dismissed. At most ``max_toasts`` are
        visible: a new one pushes out the oldest that is not sticky, and is counted."""
        self._toasts.append((kind, message, time.monotonic(), duration_ms))
        while len(self._toasts) > self._max:
            timed = next((t for t in self._toasts if t[3] > 0), None)
            self._toasts.remove(timed if timed is not None else self._toasts[0])
            self.overflow += 1
        self.shown += 1
        self.render()

    def clear_sticky(self) -> None:
        """Dismiss every sticky toast."""
        self._toasts = deque(t for t in self._toasts if t[3] > 0)
        self.render()

    def prune(self) -> None:
        """Forget toasts that have faded out (call periodically; cheap when nothing changes)."""
        now = time.monotonic()
        alive = [t for t in self._toasts if t[3] == 0 or now < t[2] + t[3] / 1000 + 1]
        if len(alive) != len(self._toasts):
            self._toasts = deque(alive)
            if not alive:
                self.overflow = 0
            self.render()

    def render(self) -> None:
        now = time.monotonic()
        parts = []
        for kind, message, at, duration_ms in reversed(self._toasts):
            style = ""
            fade = ""
            if duration_ms > 0:
                fade = " sl-fade"
                style = f' style="animation-delay: {at + duration_ms / 1000 - now:.2f}s"'
            parts.append(
                f'<div class="sl-toast sl-toast-{html.escape(kind)}{fade}" '
                f'data-testid="toast" data-kind="{html.escape(kind)}"{style}>'
                f"{html.escape(message)}</div>"
            )
        if self.overflow and self._toasts:
            parts.append(
                f'<div class="sl-toast-more" data-testid="toast-overflow" '
                f'data-count="{self.overflow}">+{self.overflow} earlier notifications</div>'
            )
        text = "".join(parts)
        if text != self._html:
            self._html = text
            self.pane.object = text
        sticky = any(t[3] == 0 for t in self._toasts)
        if self.dismiss.visible != sticky:
            self.dismiss.visible = sticky


#: Bottom left, over the equity chart: never over the trades table (top right of the page).
_FIXED: dict[str, Any] = {
    "position": "fixed",
    "bottom": "16px",
    "left": "16px",
    "z-index": "1000",
}
