"""``staleness``: turn a stream into FRESH/STALE status changes for a dashboard's stale badge."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable

from streams.operators._common import Interval, pick_scheduler, to_ns, to_timedelta

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class Staleness(Generic[_T]):
    """One status change of a watched stream.

    ``stale`` is the new status; ``at`` when it was decided (scheduler clock); ``since`` when
    the source last delivered a value, or the subscription time if it has delivered none
    (``has_value`` is then False and ``last_value`` None). ``age`` is ``at - since``.
    """

    stale: bool
    at: datetime
    since: datetime
    has_value: bool = False
    last_value: _T | None = None

    @property
    def age(self) -> timedelta:
        """How long the source had been quiet when this status was decided."""
        return self.at - self.since

    @property
    def at_ns(self) -> int:
        """``at`` in integer nanoseconds since the epoch, like event timestamps."""
        return to_ns(self.at)

    @property
    def since_ns(self) -> int:
        """``since`` in integer nanoseconds since the epoch, like event timestamps."""
        return to_ns(self.since)


def staleness(
    max_age: Interval, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[_T]], Observable[Staleness[_T]]]:
    """Watch a stream and emit a :class:`Staleness` each time it turns STALE or FRESH.

    What: only *changes* are emitted. The status starts unknown and nothing is emitted at
    subscription. The first value emits FRESH. If no value arrives for ``max_age`` (counted
    from the last value, or from subscription when there was none) STALE is emitted, with
    ``has_value=False`` if the source never delivered. The next value after STALE emits FRESH
    again. Values arriving while FRESH only restart the ``max_age`` timer.

    When the source completes, a finished feed is a feed that stops updating: unless already
    STALE, the operator still emits STALE when ``max_age`` runs out and then completes; if
    already STALE it completes at once. Errors are forwarded at once.

    Why: a dashboard must say "this number is old" instead of showing it as current. Starting
    unknown avoids a STALE-then-FRESH flicker when the source replays its current value on
    subscribe, while a feed that never starts still lights the badge after ``max_age``.

    Emissions are serialized under a per-subscription lock. ``scheduler`` (else the
    subscriber's, else ``TimeoutScheduler``) provides the clock and the timer.

    Example::

        badge = pnl_updates.pipe(staleness(15.0))   # -> Staleness(stale=..., age=...)

    Raises:
        ConfigError: at build time if ``max_age`` is not a positive duration.
    """
    limit = to_timedelta(max_age, "max_age")

    def operator(source: Observable[_T]) -> Observable[Staleness[_T]]:
        def subscribe(
            observer: abc.ObserverBase[Staleness[_T]],
            scheduler_: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, scheduler_)
            lock = threading.RLock()
            timer = SerialDisposable()
            stale: bool | None = None  # None = unknown (nothing emitted yet)
            since = clock.now
            has_value = False
            last_value: _T | None = None
            generation = 0
            completed = False
            done = False

            def status(is_stale: bool, at: datetime) -> Staleness[_T]:
                return Staleness(is_stale, at, since, has_value, last_value)

            def arm() -> None:
                timer.disposable = clock.schedule_relative(limit, on_timeout, generation)

            def on_timeout(_: abc.SchedulerBase, token: Any = None) -> None:
                nonlocal stale, done
                with lock:
                    if done or token != generation:
                        return
                    stale = True
                    observer.on_next(status(True, clock.now))
                    if completed:
                        done = True
                        observer.on_completed()

            def on_next(value: _T) -> None:
                nonlocal stale, since, has_value, last_value, generation
                with lock:
                    if done or completed:
                        return
                    now = clock.now
                    since, has_value, last_value = now, True, value
                    generation += 1
                    arm()
                    if stale is not False:
                        stale = False
                        observer.on_next(status(False, now))

            def on_error(error: Exception) -> None:
                nonlocal done
                with lock:
                    if done:
                        return
                    done = True
                    timer.dispose()
                    observer.on_error(error)

            def on_completed() -> None:
                nonlocal completed, done
                with lock:
                    if done or completed:
                        return
                    completed = True
                    if stale is True:
                        done = True
                        timer.dispose()
                        observer.on_completed()

            with lock:
                arm()
            subscription = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler_)
            return CompositeDisposable(subscription, timer)

        return Observable(subscribe)

    return operator


__all__ = ["Staleness", "staleness"]
