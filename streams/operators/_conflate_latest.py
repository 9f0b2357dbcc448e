"""``conflate_latest``: per interval, keep only the newest value of each key (e.g. per symbol)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable

from streams.operators._common import Interval, every, pick_scheduler, to_timedelta

_T = TypeVar("_T")


class ConflationCounter:
    """A thread-safe running total of values conflated away; pass it as ``on_conflated``.

    ``total`` is the number of values dropped so far, ``windows`` the number of intervals in
    which at least one value was dropped. Useful as a metric ("how much did the view skip?").
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.windows = 0

    def __call__(self, dropped: int) -> None:
        """Add ``dropped`` values from one interval."""
        with self._lock:
            self.total += dropped
            self.windows += 1

    def __repr__(self) -> str:
        return f"ConflationCounter(total={self.total}, windows={self.windows})"


def conflate_latest(
    key_fn: Callable[[_T], Hashable],
    interval: Interval,
    scheduler: abc.SchedulerBase | None = None,
    *,
    on_conflated: Callable[[int], None] | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Per ``interval``, emit only the latest value of each key, one by one.

    What: intervals run on a fixed grid ``subscribe_time + k * interval``. Within an interval
    each value replaces the held value of its key ``key_fn(value)``. At the end of the
    interval the held values are emitted **one by one, in the order their keys first arrived
    in that interval** (a later update of a key keeps its key's place but carries the newest
    value). An interval with no values emits nothing. On completion the held values are
    flushed before ``on_completed``; on error they are dropped and the error is forwarded.

    ``on_conflated(n)`` is called after an interval's values are emitted, with the number
    ``n > 0`` of values that interval replaced (arrived minus emitted); it is not called when
    nothing was dropped. :class:`ConflationCounter` is a ready-made callback.

    If ``key_fn`` or ``on_conflated`` raises (or a key is unhashable), the error goes to
    ``on_error`` and the subscription ends; nothing is raised into the source.

    Why: a dashboard fed by every tick of 500 symbols needs one update per symbol per refresh,
    not every tick; keeping the latest per key (rather than sampling the whole stream) never
    loses a symbol that happened to tick just before a busier one.

    Emissions are serialized under a per-subscription lock. ``scheduler`` (else the
    subscriber's, else ``TimeoutScheduler``) drives the intervals.

    Example::

        skipped = ConflationCounter()
        quotes = ticks.pipe(conflate_latest(lambda t: t.symbol, 0.5, on_conflated=skipped))

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
            latest: dict[Hashable, _T] = {}
            arrived = 0
            done = False

            def fail(error: Exception) -> None:
                nonlocal done, arrived
                done = True
                ticker.dispose()
                latest.clear()
                arrived = 0
                observer.on_error(error)

            def flush() -> None:
                nonlocal arrived
                if not latest:
                    return
                values = list(latest.values())
                dropped = arrived - len(values)
                latest.clear()
                arrived = 0
                for value in values:
                    observer.on_next(value)
                if dropped and on_conflated is not None:
                    try:
                        on_conflated(dropped)
                    except Exception as error:
                        fail(error)

            def tick() -> None:
                if not done:
                    flush()

            def on_next(value: _T) -> None:
                nonlocal arrived
                with lock:
                    if done:
                        return
                    try:
                        key = key_fn(value)
                        latest[key] = value
                    except Exception as error:
                        fail(error)
                        return
                    arrived += 1

            def on_error(error: Exception) -> None:
                with lock:
                    if not done:
                        fail(error)

            def on_completed() -> None:
                nonlocal done
                with lock:
                    if done:
                        return
                    ticker.dispose()
                    flush()
                    if done:  # on_conflated failed during the flush
                        return
                    done = True
                    observer.on_completed()

            ticker.disposable = every(clock, period, tick, lock)
            subscription = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler_)
            return CompositeDisposable(subscription, ticker)

        return Observable(subscribe)

    return operator


__all__ = ["ConflationCounter", "conflate_latest"]
