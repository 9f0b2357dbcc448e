"""The fold as a whole: dispatch, meta, skipping covered events, purity and replay."""

from __future__ import annotations

from state.fold import apply, apply_traced, replay
from state.model import initial_state, state_to_dict
from tests.factories import (
    buy,
    cash_adjusted,
    heartbeat,
    order_submitted,
    runner_status,
    signal,
    state_changed,
    tick,
    with_seqs,
)


def test_every_event_sets_meta_seq_ts_and_count() -> None:
    state = apply(initial_state(), tick(seq=41, ts_event=123))

    assert dict(state["meta"]) == {"seq": 41, "count": 1, "ts": 123, "schema_version": 2}


def test_unknown_event_type_changes_only_meta() -> None:
    start = initial_state(100.0)

    state = replay(with_seqs([heartbeat(), signal()]), start)

    assert {k: v for k, v in state.items() if k != "meta"} == {
        k: v for k, v in start.items() if k != "meta"
    }
    assert state["meta"]["seq"] == 2
    assert state["meta"]["count"] == 2


def test_event_already_covered_by_state_is_skipped() -> None:
    state = replay(with_seqs([buy(10, 100.0)]), initial_state(10_000.0))

    again = apply(state, buy(10, 100.0, seq=1))

    assert again is state


def test_unlogged_event_applies_and_keeps_meta_seq() -> None:
    state = replay(with_seqs([tick()]))

    after = apply(state, cash_adjusted(5.0))

    assert after["meta"]["seq"] == 1
    assert after["meta"]["count"] == 2
    assert after["account"]["cash"] == 5.0


def test_apply_does_not_change_its_input() -> None:
    start = initial_state(1000.0)
    before = state_to_dict(start)

    apply(start, buy(10, 50.0, commission=1.0))

    assert state_to_dict(start) == before


def test_replay_defaults_to_initial_state_and_is_deterministic() -> None:
    events = with_seqs([tick(), buy(5, 100.0), order_submitted("o9"), runner_status()])

    assert replay(events) == replay(events)
    assert replay([]) == initial_state()


def test_apply_traced_lists_touched_paths() -> None:
    fill = buy(5, 100.0, symbol="MSFT", order_id="o7")

    _, touched = apply_traced(initial_state(), fill)

    assert touched == ("positions.MSFT", "account", "orders.o7")
    assert apply_traced(initial_state(), state_changed("risk.limits.max", 1))[1] == ("risk.limits",)
    assert apply_traced(initial_state(), heartbeat())[1] == ()
