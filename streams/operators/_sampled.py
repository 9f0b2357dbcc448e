"""``sampled``: the latest value on a fixed clock, only when something new arrived."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar, cast

from reactivex import Observable, abc

from streams.operators._common import Interval, OperatorRun, every, operator_from, to_timedelta

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
    return operator_from(lambda observer, clock: _Sample(observer, clock, period), scheduler)


class _Sample(OperatorRun[_T, _T]):
    """One subscription of :func:`sampled`: the tick grid and the latest unsampled value."""

    def __init__(
        self, observer: abc.ObserverBase[_T], clock: abc.SchedulerBase, period: timedelta
    ) -> None:
        super().__init__(observer, clock)
        self.period = period
        self.ticker = self.timer()
        self.has_value = False
        self.latest: _T | None = None

    def start(self) -> None:
        self.ticker.disposable = every(self.clock, self.period, self.tick, self.lock)

    def take(self) -> _T:
        value = cast(_T, self.latest)
        self.has_value, self.latest = False, None
        return value

    def tick(self) -> None:
        if not self.done and self.has_value:
            self.observer.on_next(self.take())

    def push(self, value: _T) -> None:
        self.has_value, self.latest = True, value

    def drop(self) -> None:
        self.has_value, self.latest = False, None

    def flush(self) -> None:
        if self.has_value:
            self.observer.on_next(self.take())


__all__ = ["sampled"]
