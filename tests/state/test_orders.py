"""Open-orders fold: submission, acceptance, fills, rejection and cancellation."""

from __future__ import annotations

from state.fold import apply, replay
from state.model import initial_state
from tests.factories import (
    buy,
    order_accepted,
    order_cancelled,
    order_rejected,
    order_submitted,
)


def test_submitted_order_is_open_with_nothing_filled() -> None:
    state = apply(initial_state(), order_submitted("o1", qty=10.0, ts_event=4))

    order = state["orders"]["o1"]
    assert order["status"] == "submitted"
    assert order["qty"] == 10.0
    assert order["filled_qty"] == 0.0
    assert order["leaves_qty"] == 10.0
    assert order["ts"] == 4


def test_accepted_then_partial_fill_then_complete_fill() -> None:
    accepted = replay([order_submitted("o1", qty=10.0), order_accepted("o1")])
    partial = apply(accepted, buy(4, 100.0, order_id="o1", leaves_qty=6.0))
    done = apply(partial, buy(6, 100.0, order_id="o1", leaves_qty=0.0))

    assert accepted["orders"]["o1"]["status"] == "accepted"
    assert partial["orders"]["o1"]["status"] == "partially_filled"
    assert partial["orders"]["o1"]["filled_qty"] == 4.0
    assert partial["orders"]["o1"]["leaves_qty"] == 6.0
    assert "o1" not in done["orders"]


def test_rejected_and_cancelled_orders_are_no_longer_open() -> None:
    state = replay(
        [
            order_submitted("o1"),
            order_submitted("o2"),
            order_submitted("o3"),
            order_rejected("o1"),
            order_cancelled("o2"),
        ]
    )

    assert list(state["orders"]) == ["o3"]


def test_events_for_unknown_orders_change_nothing_but_meta() -> None:
    start = initial_state()

    state = replay([order_accepted("x"), order_cancelled("x"), order_rejected("x")], start)

    assert state["orders"] is start["orders"]
    assert state["meta"]["count"] == 3


def test_fill_for_unknown_order_still_moves_the_position() -> None:
    state = apply(initial_state(), buy(5, 10.0, order_id="not-open"))

    assert state["positions"]["AAPL"]["qty"] == 5.0
    assert dict(state["orders"]) == {}
