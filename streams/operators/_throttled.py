"""``throttled``: leading + trailing throttle, so a throttled number is never left stale."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable

from streams.operators._common import Interval, pick_scheduler, to_timedelta

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

    def operator(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, scheduler_)
            lock = threading.RLock()
            window = SerialDisposable()
            window_open = False
            has_pending = False
            pending: _T | None = None
            done = False

            def open_window() -> None:
                nonlocal window_open
                window_open = True
                window.disposable = clock.schedule_relative(period, close_window)

            def close_window(_: abc.SchedulerBase, __: Any = None) -> None:
                nonlocal window_open, has_pending, pending
                with lock:
                    if done:
                        return
                    if not has_pending:
                        window_open = False
                        return
                    value = pending
                    has_pending, pending = False, None
                    open_window()
                    observer.on_next(cast(_T, value))

            def on_next(value: _T) -> None:
                nonlocal has_pending, pending
                with lock:
                    if done:
                        return
                    if window_open:
                        has_pending, pending = True, value
                        return
                    open_window()
                    observer.on_next(value)

            def on_error(error: Exception) -> None:
                nonlocal done, has_pending, pending
                with lock:
                    if done:
                        return
                    done, has_pending, pending = True, False, None
                    window.dispose()
                    observer.on_error(error)

            def on_completed() -> None:
                nonlocal done, has_pending, pending
                with lock:
                    if done:
                        return
                    done = True
                    window.dispose()
                    if has_pending:
                        value, has_pending, pending = pending, False, None
                        observer.on_next(cast(_T, value))
                    observer.on_completed()

            subscription = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler_)
            return CompositeDisposable(subscription, window)

        return Observable(subscribe)

    return operator


__all__ = ["throttled"]
