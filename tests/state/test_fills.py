"""What fills and orders do to the state: average-cost position math (long and short, partial
closes, flips through zero), reconciliation, and the open-order lifecycle (submission,
acceptance, fills, rejection and cancellation)."""

from __future__ import annotations

import pytest

from state.fold import apply, fill_position, replay
from state.model import initial_state
from tests.factories import (
    buy,
    order_accepted,
    order_cancelled,
    order_rejected,
    order_submitted,
    position_closed,
    position_updated,
    reconciliation,
    sell,
)


# -- Position math: average cost, long and short, partial closes, flips through zero --------------
def position(events: list, symbol: str = "AAPL") -> dict:
    return dict(replay(events, initial_state(10_000.0))["positions"][symbol])


def test_first_buy_opens_long_at_fill_price() -> None:
    assert position([buy(10, 100.0)]) == {"qty": 10.0, "avg_price": 100.0, "realized_pnl": 0.0}


def test_adding_to_long_moves_average_cost() -> None:
    pos = position([buy(10, 100.0), buy(30, 120.0)])

    assert pos["qty"] == 40.0
    assert pos["avg_price"] == pytest.approx(115.0)
    assert pos["realized_pnl"] == 0.0


def test_partial_sell_realizes_on_closed_part_and_keeps_average() -> None:
    pos = position([buy(10, 100.0), sell(4, 110.0)])

    assert pos == {"qty": 6.0, "avg_price": 100.0, "realized_pnl": pytest.approx(40.0)}


def test_full_close_is_flat_with_zero_average() -> None:
    pos = position([buy(10, 100.0), sell(10, 90.0)])

    assert pos == {"qty": 0.0, "avg_price": 0.0, "realized_pnl": pytest.approx(-100.0)}


def test_short_profits_when_price_falls() -> None:
    pos = position([sell(5, 200.0), sell(5, 180.0), buy(4, 150.0)])

    assert pos["qty"] == -6.0
    assert pos["avg_price"] == pytest.approx(190.0)
    assert pos["realized_pnl"] == pytest.approx(4 * (190.0 - 150.0))


def test_flip_long_to_short_realizes_all_and_opens_rest_at_fill_price() -> None:
    pos = position([buy(10, 100.0), sell(15, 120.0)])

    assert pos == {"qty": -5.0, "avg_price": 120.0, "realized_pnl": pytest.approx(200.0)}


def test_flip_short_to_long() -> None:
    pos = position([sell(10, 50.0), buy(12, 60.0)])

    assert pos == {"qty": 2.0, "avg_price": 60.0, "realized_pnl": pytest.approx(-100.0)}


def test_float_noise_closes_to_exact_zero() -> None:
    new, _ = fill_position(None, 0.1, 10.0)
    new, _ = fill_position(new, 0.2, 10.0)

    flat, _ = fill_position(new, -0.30000000000000004, 11.0)

    assert flat["qty"] == 0.0
    assert flat["avg_price"] == 0.0


def test_buy_pays_price_and_commission_from_cash() -> None:
    state = replay([buy(10, 100.0, commission=1.5)], initial_state(10_000.0))

    assert state["account"]["cash"] == pytest.approx(10_000.0 - 1000.0 - 1.5)
    assert state["account"]["commissions"] == pytest.approx(1.5)


def test_sell_receives_proceeds_minus_commission_and_books_realized() -> None:
    state = replay(
        [buy(10, 100.0, commission=1.0), sell(10, 105.0, commission=1.0)], initial_state(10_000.0)
    )

    account = state["account"]
    assert account["cash"] == pytest.approx(10_000.0 + 50.0 - 2.0)
    assert account["realized_pnl"] == pytest.approx(50.0)
    assert account["commissions"] == pytest.approx(2.0)


def test_position_notifications_never_move_a_position() -> None:
    """Two fills applied before their notifications: the notifications must not wind back."""
    state = replay([buy(10, 100.0), buy(5, 102.0)])
    before = state["positions"]["AAPL"]

    after = replay(
        [
            position_updated("AAPL", qty=10.0, avg_price=100.0, realized_pnl=0.0),
            position_closed("AAPL", realized_pnl=0.0),
        ],
        state,
    )

    assert after["positions"]["AAPL"] == before
    assert before["qty"] == 15.0


def test_reconciliation_takes_broker_truth_keeps_realized_history() -> None:
    state = replay(
        [
            buy(10, 100.0),
            sell(5, 110.0),
            reconciliation("AAPL", engine_qty=5.0, broker_qty=8.0, broker_avg_price=101.0),
        ]
    )

    assert state["positions"]["AAPL"] == {"qty": 8.0, "avg_price": 101.0, "realized_pnl": 50.0}


def test_reconciliation_to_zero_has_no_average() -> None:
    state = apply(initial_state(), reconciliation(broker_qty=0.0, broker_avg_price=99.0))

    assert state["positions"]["AAPL"]["qty"] == 0.0
    assert state["positions"]["AAPL"]["avg_price"] == 0.0


def test_reconciliation_does_not_move_cash() -> None:
    start = initial_state(500.0)

    state = apply(start, reconciliation(broker_qty=10.0, broker_avg_price=100.0))

    assert state["account"] == start["account"]


# -- Open-orders fold: submission, acceptance, fills, rejection and cancellation ------------------
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
