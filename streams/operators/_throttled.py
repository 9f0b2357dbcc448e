"""``throttled``: leading + trailing throttle, so a throttled number is never left stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from reactivex import Observable, abc

from streams.operators._common import Interval, OperatorRun, operator_from, to_timedelta

_T = TypeVar("_T")


def throttled(
    interval: Interval, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Throttle a fast stream to at most one value per ``interval``, keeping the latest.

    What: the first value passes at once and opens a window of ``interval``. Values arriving
    inside the window are held (only the latest is kept); when the window ends the held value,
    if any, is emitted and opens the next window. A window with nothing held closes, and the
    next value again passes at once. On completion a held value is emitted before
    ``on_completed``; on error the held value is dropped and the error is forwarded at once.

    Why: a dashboard P&L or price shown "every 5 s" must show the *latest* number, not the
    first of a burst. ``reactivex.operators.throttle_first`` drops the tail of a burst, so the
    screen would stay on an old value until the next change; this operator never does.

    Emissions are serialized under a per-subscription lock, so it is safe with a threaded
    scheduler. ``scheduler`` (else the subscriber's, else ``TimeoutScheduler``) times the windows.

    Example::

        pnl_view = pnl_updates.pipe(throttled(5.0))

    Raises:
        ConfigError: at build time if ``interval`` is not a positive duration.
    """
    period = to_timedelta(interval, "interval")
    return operator_from(lambda observer, clock: _Throttle(observer, clock, period), scheduler)


class _Throttle(OperatorRun[_T, _T]):
    """One subscription of :func:`throttled`: an open window and the latest held value."""

    def __init__(
        self, observer: abc.ObserverBase[_T], clock: abc.SchedulerBase, period: timedelta
    ) -> None:
        super().__init__(observer, clock)
        self.period = period
        self.window = self.timer()
        self.window_open = False
        self.has_pending = False
        self.pending: _T | None = None

    def open_window(self) -> None:
        self.window_open = True
        self.window.disposable = self.clock.schedule_relative(self.period, self.close_window)

    def close_window(self, _: abc.SchedulerBase, __: Any = None) -> None:
        with self.lock:
            if self.done:
                return
            if not self.has_pending:
                self.window_open = False
                return
            value = self.take()
            self.open_window()
            self.observer.on_next(value)

    def take(self) -> _T:
        value = cast(_T, self.pending)
        self.has_pending, self.pending = False, None
        return value

    def push(self, value: _T) -> None:
        if self.window_open:
            self.has_pending, self.pending = True, value
            return
        self.open_window()
        self.observer.on_next(value)

    def drop(self) -> None:
        self.has_pending, self.pending = False, None

    def flush(self) -> None:
        if self.has_pending:
            self.observer.on_next(self.take())


__all__ = ["throttled"]
