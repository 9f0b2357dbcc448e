"""``debounced``: emit once a burst has gone quiet, with an optional cap on how long to wait."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from streams.errors import ConfigError
from streams.operators._common import Interval, pick_scheduler, to_timedelta

_T = TypeVar("_T")


def debounced(
    duetime: Interval,
    scheduler: abc.SchedulerBase | None = None,
    *,
    max_wait: Interval | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Emit the latest value once the source has been quiet for ``duetime``.

    What: every value restarts a quiet timer of ``duetime``; when it runs out, the latest value
    is emitted. With ``max_wait``, a value is never held longer than ``max_wait``: the first
    value held after an emission starts a second timer, and when that runs out the latest
    value is emitted even though the burst goes on. Either timer firing emits once and resets
    both. On completion a held value is emitted before ``on_completed``; on error the held
    value is dropped and the error is forwarded at once.

    Why: plain debounce starves under a flood (a feed that never pauses would never update
    the dashboard); ``max_wait`` bounds that delay while still collapsing bursts.

    Emissions are serialized under a per-subscription lock; timers made stale by a newer value
    are ignored even if they already fired on another thread. ``scheduler`` (else the
    subscriber's, else ``TimeoutScheduler``) runs the timers.

    Example::

        positions_view = position_updates.pipe(debounced(0.2, max_wait=1.0))

    Raises:
        ConfigError: at build time if ``duetime`` is not positive, or ``max_wait`` is not a
            duration at least as long as ``duetime``.
    """
    quiet_period = to_timedelta(duetime, "duetime")
    max_period: timedelta | None = None
    if max_wait is not None:
        max_period = to_timedelta(max_wait, "max_wait")
        if max_period < quiet_period:
            raise ConfigError(f"max_wait must be at least duetime ({duetime!r}), got {max_wait!r}")

    def operator(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, scheduler_)
            lock = threading.RLock()
            quiet_timer = SerialDisposable()
            max_timer = SerialDisposable()
            has_pending = False
            pending: _T | None = None
            # Tokens so a timer made obsolete by a newer value or an emission does nothing.
            burst = 0
            last_value = 0
            done = False

            def emit() -> None:
                nonlocal has_pending, pending, burst
                value = cast(_T, pending)
                has_pending, pending = False, None
                burst += 1
                quiet_timer.disposable = Disposable()
                max_timer.disposable = Disposable()
                observer.on_next(value)

            def on_quiet(_: abc.SchedulerBase, token: Any = None) -> None:
                with lock:
                    if not done and has_pending and token == (burst, last_value):
                        emit()

            def on_max_wait(_: abc.SchedulerBase, token: Any = None) -> None:
                with lock:
                    if not done and has_pending and token == burst:
                        emit()

            def on_next(value: _T) -> None:
                nonlocal has_pending, pending, last_value
                with lock:
                    if done:
                        return
                    starts_burst = not has_pending
                    has_pending, pending = True, value
                    last_value += 1
                    quiet_timer.disposable = clock.schedule_relative(
                        quiet_period, on_quiet, (burst, last_value)
                    )
                    if starts_burst and max_period is not None:
                        max_timer.disposable = clock.schedule_relative(
                            max_period, on_max_wait, burst
                        )

            def stop() -> None:
                nonlocal done
                done = True
                quiet_timer.dispose()
                max_timer.dispose()

            def on_error(error: Exception) -> None:
                nonlocal has_pending, pending
                with lock:
                    if done:
                        return
                    stop()
                    has_pending, pending = False, None
                    observer.on_error(error)

            def on_completed() -> None:
                with lock:
                    if done:
                        return
                    stop()
                    if has_pending:
                        emit()
                    observer.on_completed()

            subscription = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler_)
            return CompositeDisposable(subscription, quiet_timer, max_timer)

        return Observable(subscribe)

    return operator


__all__ = ["debounced"]
