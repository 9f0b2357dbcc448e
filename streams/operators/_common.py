"""Shared plumbing for the view operators: durations, clocks, schedulers and a tick grid.

Private to ``streams.operators``; nothing here is re-exported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from reactivex import abc
from reactivex.disposable import SerialDisposable
from reactivex.scheduler import TimeoutScheduler

from streams.errors import ConfigError

#: A duration: float seconds or a ``timedelta``.
Interval = float | timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def to_ns(moment: datetime) -> int:
    """Integer nanoseconds since the Unix epoch for a scheduler's ``now`` (naive = UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


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
