"""Account and P&L folds: cash adjustments and marked P&L figures."""

from __future__ import annotations

from state.fold import apply, replay
from state.model import initial_state
from tests.factories import cash_adjusted, pnl_updated


def test_cash_adjustment_adds_and_removes_cash() -> None:
    state = replay([cash_adjusted(250.0), cash_adjusted(-100.0)], initial_state(1000.0))

    assert state["account"]["cash"] == 1150.0
    assert state["account"]["starting_cash"] == 1000.0


def test_pnl_updated_replaces_all_figures() -> None:
    event = pnl_updated(
        realized=10.0, unrealized=-5.0, daily=5.0, equity=1005.0, drawdown=2.0, max_drawdown=3.0
    )

    state = apply(initial_state(1000.0), event)

    assert dict(state["pnl"]) == {
        "realized": 10.0,
        "unrealized": -5.0,
        "daily": 5.0,
        "equity": 1005.0,
        "drawdown": 2.0,
        "max_drawdown": 3.0,
        "session_start": 0,
    }


def test_pnl_updated_keeps_session_start() -> None:
    state = apply(initial_state(), pnl_updated(session_start=1_700_000_000_000_000_000))

    assert state["pnl"]["session_start"] == 1_700_000_000_000_000_000


def test_initial_equity_is_starting_cash() -> None:
    assert initial_state(2500.0)["pnl"]["equity"] == 2500.0
