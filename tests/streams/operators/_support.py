"""Small helpers shared by the operator tests: run a pipeline on a TestScheduler, read results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable
from reactivex.notification import OnCompleted, OnError, OnNext
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error


def run(
    scheduler: TestScheduler,
    create: Callable[[], Observable[Any]],
    disposed: float = 1000.0,
) -> list[Recorded[Any]]:
    """Create at 100, subscribe at 200, dispose at ``disposed``; the recorded messages."""
    return scheduler.start(create, created=100.0, subscribed=200.0, disposed=disposed).messages


def nexts(messages: list[Recorded[Any]]) -> list[tuple[float, Any]]:
    """``(time, value)`` of every on_next, in order."""
    return [(m.time, m.value.value) for m in messages if isinstance(m.value, OnNext)]


def values(messages: list[Recorded[Any]]) -> list[Any]:
    """The on_next values, in order."""
    return [value for _, value in nexts(messages)]


def completed_at(messages: list[Recorded[Any]]) -> float | None:
    """Time of the on_completed, or None."""
    times = [m.time for m in messages if isinstance(m.value, OnCompleted)]
    return times[0] if times else None


def error_of(messages: list[Recorded[Any]]) -> tuple[float, Exception] | None:
    """``(time, exception)`` of the on_error, or None; asserts it is the last message."""
    for i, m in enumerate(messages):
        if isinstance(m.value, OnError):
            assert i == len(messages) - 1, "messages after on_error"
            return m.time, m.value.exception
    return None
