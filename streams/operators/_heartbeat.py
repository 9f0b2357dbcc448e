"""``heartbeat`` / ``heartbeats``: a periodic source of liveness beats on the injected clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from reactivex import Observable, abc
from reactivex.disposable import SerialDisposable

from streams import topics
from streams.clock import Clock, datetime_to_ns
from streams.events import Heartbeat
from streams.operators._common import Interval, every, pick_scheduler, to_timedelta

_T = TypeVar("_T")


def heartbeat(
    interval: Interval,
    make_beat: Callable[[int, int], _T],
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[_T]:
    """A source that emits ``make_beat(count, ts_ns)`` every ``interval``; it never completes.

    What: unlike the other members of this package this is a *source*, not an operator. Beats
    fall on a fixed grid ``subscribe_time + k * interval`` for k = 1, 2, ... (no beat at
    subscription, no drift); ``count`` is k and ``ts_ns`` the scheduler's clock at the beat in
    integer nanoseconds since the epoch. Each subscription has its own count. If
    ``make_beat`` raises, the error goes to ``on_error`` and the beats stop.

    Why: "alive" must be driven by the injected clock so the same code beats in real time
    live and in virtual time in backtests and tests; see :func:`heartbeats` for the engine's
    ``Heartbeat`` events.

    ``scheduler`` (else the subscriber's, else ``TimeoutScheduler``) drives the beats.

    Raises:
        ConfigError: at build time if ``interval`` is not a positive duration.
    """
    period = to_timedelta(interval, "interval")

    def subscribe(
        observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        clock = pick_scheduler(scheduler, scheduler_)
        lock = threading.RLock()
        ticker = SerialDisposable()
        count = 0

        def beat() -> None:
            nonlocal count
            if ticker.is_disposed:
                return
            count += 1
            try:
                value = make_beat(count, datetime_to_ns(clock.now))
            except Exception as error:
                ticker.dispose()
                observer.on_error(error)
                return
            observer.on_next(value)

        ticker.disposable = every(clock, period, beat, lock)
        return ticker

    return Observable(subscribe)


def heartbeats(
    component: str,
    interval: Interval,
    scheduler: abc.SchedulerBase | None = None,
    clock: Clock | None = None,
) -> Observable[Heartbeat]:
    """``Heartbeat(component=..., count=k, ...)`` every ``interval``, k from 1.

    What: :func:`heartbeat` specialised to the engine's event; the topic is
    ``system.{component}``. ``ts_init`` is the scheduler's clock at the beat (what its age is
    judged by); ``ts_event`` is ``clock`` (the engine's time, e.g. the data's in a replay) or,
    without one, the scheduler's clock too. Event ids are fresh random ids (heartbeats are not
    critical and are never replayed for state). The runner publishes these.

    Why: the engine publishes one of these per component every N seconds so the dashboard
    and watchdogs can tell a quiet market from a dead component.

    Example::

        bus_feed = heartbeats("engine", 5.0, scheduler=clock_scheduler)

    Raises:
        EventError: at build time if ``component`` is not a valid topic segment.
        ConfigError: at build time if ``interval`` is not a positive duration.
    """
    topics.system(component)

    def make(count: int, ts_ns: int) -> Heartbeat:
        ts_event = clock.now_ns() if clock is not None else ts_ns
        return Heartbeat(component=component, count=count, ts_event=ts_event, ts_init=ts_ns)

    return heartbeat(interval, make, scheduler)


__all__ = ["heartbeat", "heartbeats"]
