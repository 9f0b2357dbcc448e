"""``throttled``, ``sampled``, ``debounced``: hold the latest value and emit it on a timing rule.

The three differ only in *when* the held value goes out: at the end of a window opened by the
first value (``throttled``), on a fixed clock grid (``sampled``), or once a burst goes quiet
(``debounced``). What they share -- holding only the latest value, dropping it on error and
emitting it on completion -- is :class:`_HoldsLatest`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from streams.errors import ConfigError
from streams.operators._common import Interval, OperatorRun, every, operator_from, to_timedelta

_T = TypeVar("_T")


class _HoldsLatest(OperatorRun[_T, _T]):
    """A run that holds the latest value until its timing rule emits it.

    ``period`` is the duration of that rule (the throttle window, the sampling tick, the
    debounce quiet time). The held value is dropped on error and emitted on completion
    (before ``on_completed``).
    """

    def __init__(
        self, observer: abc.ObserverBase[_T], clock: abc.SchedulerBase, period: timedelta
    ) -> None:
        super().__init__(observer, clock)
        self.period = period
        self.has_pending = False
        self.pending: _T | None = None

    def hold(self, value: _T) -> None:
        """Keep ``value`` as the one to emit next, replacing any value held before."""
        self.has_pending, self.pending = True, value

    def take(self) -> _T:
        """The held value, no longer held."""
        value = cast(_T, self.pending)
        self.has_pending, self.pending = False, None
        return value

    def emit(self) -> None:
        """Emit the held value (a subclass may reset its timers here too)."""
        self.observer.on_next(self.take())

    def drop(self) -> None:
        self.has_pending, self.pending = False, None

    def flush(self) -> None:
        if self.has_pending:
            self.emit()


def _per_interval(
    run: Callable[[abc.ObserverBase[_T], abc.SchedulerBase, timedelta], _HoldsLatest[_T]],
    interval: Interval,
    scheduler: abc.SchedulerBase | None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """The operator of a run class timed by one ``interval`` (ConfigError if not positive)."""
    period = to_timedelta(interval, "interval")
    return operator_from(lambda observer, clock: run(observer, clock, period), scheduler)


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
    return _per_interval(_Throttle, interval, scheduler)


class _Throttle(_HoldsLatest[_T]):
    """One subscription of :func:`throttled`: an open window and the latest held value."""

    def __init__(
        self, observer: abc.ObserverBase[_T], clock: abc.SchedulerBase, period: timedelta
    ) -> None:
        super().__init__(observer, clock, period)
        self.window = self.timer()
        self.window_open = False

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

    def push(self, value: _T) -> None:
        if self.window_open:
            self.hold(value)
            return
        self.open_window()
        self.observer.on_next(value)


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
    return _per_interval(_Sample, interval, scheduler)


class _Sample(_HoldsLatest[_T]):
    """One subscription of :func:`sampled`: the tick grid and the latest unsampled value."""

    def __init__(
        self, observer: abc.ObserverBase[_T], clock: abc.SchedulerBase, period: timedelta
    ) -> None:
        super().__init__(observer, clock, period)
        self.ticker = self.timer()

    def start(self) -> None:
        self.ticker.disposable = every(self.clock, self.period, self.tick, self.lock)

    def tick(self) -> None:
        if not self.done and self.has_pending:
            self.emit()

    def push(self, value: _T) -> None:
        self.hold(value)


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

    return operator_from(
        lambda observer, clock: _Debounce(observer, clock, quiet_period, max_period), scheduler
    )


class _Debounce(_HoldsLatest[_T]):
    """One subscription of :func:`debounced`: the quiet (``period``) and max-wait timers and
    the held value.

    Timers carry tokens (``burst``, ``last_value``) so one made obsolete by a newer value or an
    emission does nothing, even if it already fired on another thread.
    """

    def __init__(
        self,
        observer: abc.ObserverBase[_T],
        clock: abc.SchedulerBase,
        quiet_period: timedelta,
        max_period: timedelta | None,
    ) -> None:
        super().__init__(observer, clock, quiet_period)
        self.max_period = max_period
        self.quiet_timer = self.timer()
        self.max_timer = self.timer()
        self.burst = 0
        self.last_value = 0

    def emit(self) -> None:
        value = self.take()
        self.burst += 1
        self.quiet_timer.disposable = Disposable()
        self.max_timer.disposable = Disposable()
        self.observer.on_next(value)

    def on_quiet(self, _: abc.SchedulerBase, token: Any = None) -> None:
        with self.lock:
            if not self.done and self.has_pending and token == (self.burst, self.last_value):
                self.emit()

    def on_max_wait(self, _: abc.SchedulerBase, token: Any = None) -> None:
        with self.lock:
            if not self.done and self.has_pending and token == self.burst:
                self.emit()

    def push(self, value: _T) -> None:
        starts_burst = not self.has_pending
        self.hold(value)
        self.last_value += 1
        self.quiet_timer.disposable = self.clock.schedule_relative(
            self.period, self.on_quiet, (self.burst, self.last_value)
        )
        if starts_burst and self.max_period is not None:
            self.max_timer.disposable = self.clock.schedule_relative(
                self.max_period, self.on_max_wait, self.burst
            )


__all__ = ["debounced", "sampled", "throttled"]
