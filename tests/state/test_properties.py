"""Property tests: replay equals live, snapshot + tail equals full replay, value is conserved."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from state.fold import replay
from state.journal import MemoryJournal
from state.model import initial_state, state_from_dict, state_to_dict
from state.store import StateStore
from streams.events import CashAdjusted, Event, TradeExecuted
from tests.factories import (
    FakeClock,
    any_events,
    cash_adjustments,
    event_lists,
    fills,
    ticks,
    with_seqs,
)

START_CASH = 100_000.0


def live_store(events: list[Event]) -> tuple[StateStore, MemoryJournal]:
    journal = MemoryJournal()
    clock = FakeClock()
    store = StateStore(journal, clock=clock, initial=initial_state(START_CASH))
    for event in events:
        clock.advance(0.1)
        store.record(event)
    return store, journal


@settings(max_examples=150, deadline=None)
@given(event_lists())
def test_replay_of_the_log_equals_live_state(events: list[Event]) -> None:
    store, journal = live_store(events)

    live = store.get_state()

    assert replay(journal.events, initial_state(START_CASH)) == live
    assert replay(with_seqs(events), initial_state(START_CASH)) == live
    assert live["meta"]["seq"] == len(events) == store.version


@settings(max_examples=75, deadline=None)
@given(event_lists(), st.integers(1, 8))
def test_record_batch_equals_record_one_by_one(events: list[Event], chunk: int) -> None:
    store = StateStore(MemoryJournal(), clock=FakeClock(), initial=initial_state(START_CASH))

    for i in range(0, len(events), chunk):
        store.record_batch(events[i : i + chunk])

    assert store.get_state() == replay(with_seqs(events), initial_state(START_CASH))


@settings(max_examples=150, deadline=None)
@given(event_lists(), st.data())
def test_snapshot_plus_tail_equals_full_replay(events: list[Event], data: st.DataObject) -> None:
    logged = with_seqs(events)
    cut = data.draw(st.integers(0, len(logged)), label="cut")
    overlap = data.draw(st.integers(0, cut), label="overlap")
    head = replay(logged[:cut], initial_state(START_CASH))

    restored = state_from_dict(json.loads(json.dumps(state_to_dict(head))))
    # A tail that starts before the snapshot's seq must not apply anything twice.
    resumed = replay(logged[cut - overlap :], restored)

    assert resumed == replay(logged, initial_state(START_CASH))


@settings(max_examples=150, deadline=None)
@given(event_lists(st.one_of(fills(), ticks(), cash_adjustments()), max_size=60))
def test_cash_plus_positions_at_cost_is_conserved(events: list[Event]) -> None:
    state = replay(with_seqs(events), initial_state(START_CASH))

    account = state["account"]
    deposits = sum(e.amount for e in events if isinstance(e, CashAdjusted))
    at_cost = sum(p["qty"] * p["avg_price"] for p in state["positions"].values())
    expected = START_CASH + deposits + account["realized_pnl"] - account["commissions"]
    assert math.isclose(account["cash"] + at_cost, expected, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(
        sum(p["realized_pnl"] for p in state["positions"].values()),
        account["realized_pnl"],
        rel_tol=1e-9,
        abs_tol=1e-6,
    )
    commissions = sum(e.commission for e in events if isinstance(e, TradeExecuted))
    assert math.isclose(account["commissions"], commissions, abs_tol=1e-9)
    for pos in state["positions"].values():
        assert (pos["avg_price"] > 0.0) == (pos["qty"] != 0.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(any_events(), max_size=20))
def test_fold_never_raises_and_counts_every_event(events: list[Event]) -> None:
    state = replay(events, initial_state())

    assert state["meta"]["count"] == len(events)
