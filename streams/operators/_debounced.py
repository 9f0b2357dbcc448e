"""``debounced``: emit once a burst has gone quiet, with an optional cap on how long to wait."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from streams.errors import ConfigError
from streams.operators._common import Interval, OperatorRun, operator_from, to_timedelta

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

    return operator_from(
        lambda observer, clock: _Debounce(observer, clock, quiet_period, max_period), scheduler
    )


class _Debounce(OperatorRun[_T, _T]):
    """One subscription of :func:`debounced`: the quiet and max-wait timers and the held value.

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
        super().__init__(observer, clock)
        self.quiet_period = quiet_period
        self.max_period = max_period
        self.quiet_timer = self.timer()
        self.max_timer = self.timer()
        self.has_pending = False
        self.pending: _T | None = None
        self.burst = 0
        self.last_value = 0

    def emit(self) -> None:
        value = cast(_T, self.pending)
        self.has_pending, self.pending = False, None
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
        self.has_pending, self.pending = True, value
        self.last_value += 1
        self.quiet_timer.disposable = self.clock.schedule_relative(
            self.quiet_period, self.on_quiet, (self.burst, self.last_value)
        )
        if starts_burst and self.max_period is not None:
            self.max_timer.disposable = self.clock.schedule_relative(
                self.max_period, self.on_max_wait, self.burst
            )

    def drop(self) -> None:
        self.has_pending, self.pending = False, None

    def flush(self) -> None:
        if self.has_pending:
            self.emit()


__all__ = ["debounced"]
