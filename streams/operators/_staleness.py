"""``staleness``: turn a stream into FRESH/STALE status changes for a dashboard's stale badge."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc

from streams.clock import datetime_to_ns
from streams.operators._common import Interval, OperatorRun, operator_from, to_timedelta

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
        return datetime_to_ns(self.at)

    @property
    def since_ns(self) -> int:
        """``since`` in integer nanoseconds since the epoch, like event timestamps."""
        return datetime_to_ns(self.since)


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

    def watch(observer: abc.ObserverBase[Staleness[_T]], clock: abc.SchedulerBase) -> _Watch[_T]:
        return _Watch(observer, clock, limit)

    return operator_from(watch, scheduler)


class _Watch(OperatorRun[_T, Staleness[_T]]):
    """One subscription of :func:`staleness`: the status, the last value and the age timer.

    Unlike the other operators it outlives a completed source: ``completed`` is set, values are
    ignored, and the run ends when the pending STALE is emitted.
    """

    def __init__(
        self,
        observer: abc.ObserverBase[Staleness[_T]],
        clock: abc.SchedulerBase,
        limit: timedelta,
    ) -> None:
        super().__init__(observer, clock)
        self.limit = limit
        self.age_timer = self.timer()
        self.stale: bool | None = None  # None = unknown (nothing emitted yet)
        self.since = clock.now
        self.has_value = False
        self.last_value: _T | None = None
        # A token so a timer restarted by a newer value does nothing.
        self.generation = 0
        self.completed = False

    def status(self, is_stale: bool, at: datetime) -> Staleness[_T]:
        return Staleness(is_stale, at, self.since, self.has_value, self.last_value)

    def start(self) -> None:
        self.age_timer.disposable = self.clock.schedule_relative(
            self.limit, self.on_timeout, self.generation
        )

    def on_timeout(self, _: abc.SchedulerBase, token: Any = None) -> None:
        with self.lock:
            if self.done or token != self.generation:
                return
            self.stale = True
            self.observer.on_next(self.status(True, self.clock.now))
            if self.completed:
                self.stop()
                self.observer.on_completed()

    def push(self, value: _T) -> None:
        if self.completed:
            return
        now = self.clock.now
        self.since, self.has_value, self.last_value = now, True, value
        self.generation += 1
        self.start()
        if self.stale is not False:
            self.stale = False
            self.observer.on_next(self.status(False, now))

    def complete(self) -> None:
        if self.completed:
            return
        self.completed = True
        if self.stale is True:
            self.stop()
            self.observer.on_completed()


__all__ = ["Staleness", "staleness"]
