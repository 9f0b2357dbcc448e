"""``sampled``: the latest value on a fixed clock, only when something new arrived."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable

from streams.operators._common import Interval, every, pick_scheduler, to_timedelta

_T = TypeVar("_T")


def sampled(
    interval: Interval, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Emit the latest value every ``interval``, only if a new value arrived since the last tick.

    What: ticks run on a fixed grid ``subscribe_time + k * interval`` (they do not drift). At
    each tick the latest value received since the previous tick is emitted; a tick with
    nothing new emits nothing (no repeats). On completion the latest not-yet-sampled value is
    emitted at once, followed by ``on_completed`` (``reactivex.operators.sample`` instead waits
    for the next tick to complete). On error the error is forwarded at once.

    Why: a chart or a table that refreshes on a steady beat (e.g. market data every 1 s)
    wants a predictable cadence, unlike ``throttled`` whose windows start at the first value.

    Emissions are serialized under a per-subscription lock. ``scheduler`` (else the
    subscriber's, else ``TimeoutScheduler``) drives the ticks.

    Example::

        quotes_view = ticks.pipe(sampled(1.0))

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
            ticker = SerialDisposable()
            has_value = False
            latest: _T | None = None
            done = False

            def take() -> _T:
                nonlocal has_value, latest
                value = cast(_T, latest)
                has_value, latest = False, None
                return value

            def tick() -> None:
                if not done and has_value:
                    observer.on_next(take())

            def on_next(value: _T) -> None:
                nonlocal has_value, latest
                with lock:
                    if not done:
                        has_value, latest = True, value

            def on_error(error: Exception) -> None:
                nonlocal done, has_value, latest
                with lock:
                    if done:
                        return
                    done, has_value, latest = True, False, None
                    ticker.dispose()
                    observer.on_error(error)

            def on_completed() -> None:
                nonlocal done
                with lock:
                    if done:
                        return
                    done = True
                    ticker.dispose()
                    if has_value:
                        observer.on_next(take())
                    observer.on_completed()

            ticker.disposable = every(clock, period, tick, lock)
            subscription = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler_)
            return CompositeDisposable(subscription, ticker)

        return Observable(subscribe)

    return operator


__all__ = ["sampled"]
