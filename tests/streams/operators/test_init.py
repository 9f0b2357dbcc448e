"""The facade: every operator is exported, documented, and composes with ``pipe``."""

from __future__ import annotations

import inspect

import reactivex
from reactivex.testing import TestScheduler

import streams.operators as operators
from streams.operators import debounced, sampled, staleness, throttled
from tests.streams.operators._support import completed_at, nexts, on_completed, on_next, run


def test_every_export_has_a_docstring() -> None:
    assert operators.__doc__
    for name in operators.__all__:
        exported = getattr(operators, name)
        if inspect.isfunction(exported) or inspect.isclass(exported):
            assert inspect.getdoc(exported), f"{name} has no docstring"


def test_every_operator_takes_an_optional_scheduler() -> None:
    for name in ("throttled", "sampled", "debounced", "staleness"):
        parameter = inspect.signature(getattr(operators, name)).parameters["scheduler"]
        assert parameter.default is None, name
    assert inspect.signature(operators.heartbeat).parameters["scheduler"].default is None
    assert inspect.signature(operators.heartbeats).parameters["scheduler"].default is None


def test_operators_chain_in_one_pipe() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, 1), on_next(201.3, 2), on_next(201.6, 3), on_completed(230)
    )

    messages = run(
        scheduler,
        lambda: source.pipe(
            throttled(1.0),
            debounced(0.5),
            sampled(3.0),
        ),
    )

    # throttled: 1@201, 3@202; debounced: 1@201.5, 3@202.5; sampled on the 3 s grid: the
    # latest by 203 is 3, and nothing new after it.
    assert nexts(messages) == [(203, 3)]
    assert completed_at(messages) == 230


def test_staleness_of_an_empty_completed_source() -> None:
    scheduler = TestScheduler()

    messages = run(scheduler, lambda: reactivex.empty().pipe(staleness(1.0)))

    assert [m.time for m in messages] == [201, 201]
    assert messages[0].value.value.stale is True
