"""Clocks: where domain code gets the time (never from ``time`` or ``datetime`` directly).

Live code uses :class:`LiveClock`; replays, backtests and tests use :class:`ManualClock`, which
the engine moves to each market event's time (data time, see :meth:`ManualClock.advance_to`),
or :class:`SchedulerClock` over a reactivex virtual-time scheduler. All return integer
nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from reactivex import abc

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    """Tells the time in integer nanoseconds since the epoch."""

    def now_ns(self) -> int:
        """The current time in nanoseconds since the epoch."""
        ...


class LiveClock:
    """Wall-clock time."""

    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that moves only when told to: for tests and step-by-step notebooks."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, now_ns: int) -> None:
        """Jump to ``now_ns`` (it may not go backwards)."""
        if now_ns < self._now:
            raise ValueError(f"clock cannot go backwards: {now_ns} < {self._now}")
        self._now = now_ns

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self._now += int(seconds * NS_PER_S)

    def advance_to(self, now_ns: int) -> None:
        """Move forward to ``now_ns``; an earlier time leaves the clock where it is.

        The data clock of replays and backtests: the engine thread calls it with each market
        event's time before anyone handles the event, so fills, P&L days and orders carry the
        data's time. Several symbols share a timestamp, hence no error for an equal or older one.
        """
        if now_ns > self._now:
            self._now = now_ns


class SchedulerClock:
    """The time of a reactivex scheduler, e.g. a ``HistoricalScheduler`` in a backtest."""

    def __init__(self, scheduler: abc.SchedulerBase) -> None:
        self.scheduler = scheduler

    def now_ns(self) -> int:
        return datetime_to_ns(self.scheduler.now)


def datetime_to_ns(value: datetime) -> int:
    """Nanoseconds since the epoch for ``value`` (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def ns_to_datetime(value: int) -> datetime:
    """The UTC datetime for ``value`` nanoseconds since the epoch (microsecond precision)."""
    return datetime.fromtimestamp(value / NS_PER_S, tz=UTC)
