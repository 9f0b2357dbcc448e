"""Shared plumbing for the view operators: durations, schedulers, a tick grid and the
one subscribe skeleton (:class:`OperatorRun` + :func:`operator_from`) every operator builds on.

Private to ``streams.operators``; nothing here is re-exported except :data:`Interval`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable
from reactivex.scheduler import TimeoutScheduler

from streams.errors import ConfigError

#: A duration: float seconds or a ``timedelta``.
Interval = float | timedelta

_T = TypeVar("_T")
_R = TypeVar("_R")


def to_timedelta(value: Interval, name: str, *, allow_zero: bool = False) -> timedelta:
    """``value`` as a ``timedelta``; ConfigError naming ``name`` if it is not a positive duration.

    Checked when the operator is built, so a bad interval from the config fails at wiring time
    rather than inside a running subscription.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigError(
            f"{name} must be float seconds or a timedelta, got {value!r} ({type(value).__name__})"
        )
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta < timedelta(0) or (delta == timedelta(0) and not allow_zero):
        expected = "zero or positive" if allow_zero else "positive"
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return delta


def pick_scheduler(
    given: abc.SchedulerBase | None, at_subscribe: abc.SchedulerBase | None
) -> abc.SchedulerBase:
    """The scheduler an operator runs on: the one it was built with, else the subscriber's."""
    return given or at_subscribe or TimeoutScheduler.singleton()


def every(
    scheduler: abc.SchedulerBase,
    period: timedelta,
    action: Callable[[], None],
    lock: threading.RLock,
) -> abc.DisposableBase:
    """Run ``action`` under ``lock`` at ``now + k * period`` (k = 1, 2, ...) until disposed.

    Due times are computed from the start, not from the previous run, so a slow action or a
    late timer does not make the grid drift. Works on any scheduler (no periodic support needed).
    """
    start = scheduler.now
    serial = SerialDisposable()
    k = 0

    def run(_: abc.SchedulerBase, __: Any = None) -> None:
        if serial.is_disposed:
            return
        with lock:
            action()
        if not serial.is_disposed:
            schedule_next()

    def schedule_next() -> None:
        nonlocal k
        k += 1
        serial.disposable = scheduler.schedule_absolute(start + period * k, run)

    schedule_next()
    return serial


class OperatorRun(Generic[_T, _R]):
    """One subscription of a view operator: the skeleton shared by every operator.

    What: owns the per-subscription lock, the ``done`` flag and the timers, and forwards
    ``on_error`` / ``on_completed`` to the observer exactly once. A subclass keeps only what is
    its own: :meth:`start` (arm timers at subscription), :meth:`push` (a value while running),
    :meth:`drop` (forget held values on error), :meth:`flush` (emit held values on completion)
    and, for an operator that outlives its source, :meth:`complete`.

    Why: the shared rules of the package (emissions serialized per subscription, no value after
    a terminal event, held values flushed on completion and dropped on error, timers disposed
    on stop) are written once here, so each operator cannot get them subtly wrong.

    Every hook runs under :attr:`lock`; timers a subclass schedules must take it too.
    """

    def __init__(self, observer: abc.ObserverBase[_R], clock: abc.SchedulerBase) -> None:
        self.observer = observer
        self.clock = clock
        self.lock = threading.RLock()
        self.done = False
        self.timers: list[SerialDisposable] = []

    def timer(self) -> SerialDisposable:
        """A new timer slot, disposed when the run stops or the subscription is disposed."""
        slot = SerialDisposable()
        self.timers.append(slot)
        return slot

    def start(self) -> None:
        """Hook: called once at subscription, before the source is subscribed."""

    def push(self, value: _T) -> None:
        """Hook: a value from the source while the run is not done."""
        raise NotImplementedError

    def drop(self) -> None:
        """Hook: the source failed; forget any held value (it is never emitted)."""

    def flush(self) -> None:
        """Hook: the source completed; emit any held value before ``on_completed``."""

    def complete(self) -> None:
        """The source completed: stop, flush held values, complete. Overridable."""
        self.stop()
        self.flush()
        self.observer.on_completed()

    def stop(self) -> None:
        """Mark the run done and dispose its timers; later source events are ignored."""
        self.done = True
        for slot in self.timers:
            slot.dispose()

    def on_next(self, value: _T) -> None:
        """Source ``on_next``: hand the value to :meth:`push` unless the run is done."""
        with self.lock:
            if not self.done:
                self.push(value)

    def on_error(self, error: Exception) -> None:
        """Source ``on_error``: stop, drop held values and forward the error at once."""
        with self.lock:
            if self.done:
                return
            self.stop()
            self.drop()
            self.observer.on_error(error)

    def on_completed(self) -> None:
        """Source ``on_completed``: :meth:`complete` unless the run is done."""
        with self.lock:
            if not self.done:
                self.complete()


def operator_from(
    make: Callable[[abc.ObserverBase[_R], abc.SchedulerBase], OperatorRun[_T, _R]],
    scheduler: abc.SchedulerBase | None,
) -> Callable[[Observable[_T]], Observable[_R]]:
    """An operator for ``Observable.pipe`` that runs ``make(observer, clock)`` per subscription.

    ``clock`` is ``scheduler`` if given, else the subscriber's, else ``TimeoutScheduler``. The
    run is started under its lock before the source is subscribed; disposing the subscription
    disposes the source subscription and every timer of the run.
    """

    def operator(source: Observable[_T]) -> Observable[_R]:
        def subscribe(
            observer: abc.ObserverBase[_R], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            run = make(observer, pick_scheduler(scheduler, scheduler_))
            with run.lock:
                run.start()
            subscription = source.subscribe(
                run.on_next, run.on_error, run.on_completed, scheduler=scheduler_
            )
            return CompositeDisposable(subscription, *run.timers)

        return Observable(subscribe)

    return operator
