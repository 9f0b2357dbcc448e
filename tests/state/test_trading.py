"""Trading-state and runner folds."""

from __future__ import annotations

import pytest

from state.fold import apply, replay
from state.model import initial_state
from state.trading import breach_state
from tests.factories import loss_breached, runner_status, trading_state


def test_trading_state_changed_sets_state_reason_actor() -> None:
    event = trading_state("halted", reason="manual halt", actor="alice", ts_event=5)

    state = apply(initial_state(), event)

    assert dict(state["trading"]) == {
        "state": "halted",
        "reason": "manual halt",
        "actor": "alice",
        "ts": 5,
    }


def test_daily_loss_breach_halts_trading() -> None:
    state = apply(initial_state(), loss_breached(daily_pnl=-600.0, limit=-500.0, action="halt"))

    assert state["trading"]["state"] == "halted"
    assert "-600" in state["trading"]["reason"]
    assert "-500" in state["trading"]["reason"]


@pytest.mark.parametrize(
    ("action", "expected"),
    [("reduce_only", "reducing"), ("Reducing", "reducing"), ("flatten", "halted"), ("", "halted")],
)
def test_breach_state_depends_on_action(action: str, expected: str) -> None:
    assert breach_state(action) == expected


def test_runner_status_sets_each_component() -> None:
    state = replay([runner_status("feed", "running"), runner_status("runner", "paused")])

    assert dict(state["runner"]) == {"feed": "running", "runner": "paused"}
