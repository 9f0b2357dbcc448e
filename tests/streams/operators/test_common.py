"""The shared operator skeleton (OperatorRun + operator_from): the rules every operator inherits.

A minimal operator that holds the latest value until a timer 10 ticks later emits it, written
only with the skeleton's hooks, shows what a new operator gets for free: one terminal event,
nothing after it, held values flushed on completion and dropped on error, timers disposed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.testing import TestScheduler

from streams.operators._common import OperatorRun, operator_from
from tests.streams.operators._support import (
    completed_at,
    error_of,
    nexts,
    on_completed,
    on_error,
    on_next,
    run,
)


class _HoldTen(OperatorRun[str, str]):
    """Hold the latest value; a timer 10 ticks after the first held value emits it."""

    def __init__(self, observer: abc.ObserverBase[str], clock: abc.SchedulerBase) -> None:
        super().__init__(observer, clock)
        self.slot = self.timer()
        self.held: str | None = None
        self.started = 0

    def start(self) -> None:
        self.started += 1

    def push(self, value: str) -> None:
        if self.held is None:
            self.slot.disposable = self.clock.schedule_relative(10.0, self.fire)
        self.held = value

    def fire(self, _: abc.SchedulerBase, __: Any = None) -> None:
        with self.lock:
            if not self.done and self.held is not None:
                value, self.held = self.held, None
                self.observer.on_next(value)

    def drop(self) -> None:
        self.held = None

    def flush(self) -> None:
        if self.held is not None:
            self.observer.on_next(self.held)


runs: list[_HoldTen] = []


def _hold_ten() -> Callable[[Observable[str]], Observable[str]]:
    def make(observer: abc.ObserverBase[str], clock: abc.SchedulerBase) -> _HoldTen:
        made = _HoldTen(observer, clock)
        runs.append(made)
        return made

    return operator_from(make, None)


def test_values_reach_the_hook_and_the_held_one_flushes_before_completion() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, "a"), on_next(212, "b"), on_next(230, "c"), on_completed(232)
    )

    messages = run(scheduler, lambda: source.pipe(_hold_ten()))

    assert nexts(messages) == [(220.0, "b"), (232.0, "c")]
    assert completed_at(messages) == 232.0
    assert runs[-1].started == 1 and runs[-1].done and runs[-1].slot.is_disposed


def test_an_error_drops_the_held_value_and_nothing_follows_it() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("boom")
    source = scheduler.create_hot_observable(
        on_next(210, "a"), on_error(215, boom), on_next(216, "late"), on_completed(217)
    )

    messages = run(scheduler, lambda: source.pipe(_hold_ten()))

    assert nexts(messages) == []  # "a" was held, then dropped; the timer at 220 is disposed
    assert error_of(messages) == (215.0, boom)
    assert runs[-1].held is None and runs[-1].slot.is_disposed


def test_disposing_the_subscription_disposes_the_timers() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(210, "a"))

    messages = run(scheduler, lambda: source.pipe(_hold_ten()), disposed=215.0)

    assert messages == []
    assert runs[-1].slot.is_disposed and not runs[-1].done
