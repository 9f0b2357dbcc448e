"""The fold: dispatch, meta, skipping covered events, purity and replay; and the market,
account and P&L, trading-state and runner, and generic-values rules."""

from __future__ import annotations

import pytest

from state.fold import apply, apply_traced, breach_state, is_generic_path, replay
from state.model import initial_state, state_to_dict
from streams.events import TickReceived
from tests.factories import (
    bar,
    buy,
    cash_adjusted,
    heartbeat,
    loss_breached,
    order_submitted,
    pnl_updated,
    quote,
    runner_status,
    signal,
    state_changed,
    tick,
    trading_state,
    with_seqs,
)


# -- The fold as a whole: dispatch, meta, skipping covered events, purity and replay --------------
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


# -- Market fold: last price, quote sides and timestamps from ticks and bars ----------------------
def test_trade_tick_sets_last_and_ts() -> None:
    state = apply(initial_state(), tick("AAPL", 101.5, ts_event=7))

    assert state["prices"]["AAPL"] == {"last": 101.5, "bid": None, "ask": None, "ts": 7}


def test_quote_tick_marks_at_mid() -> None:
    state = apply(initial_state(), quote("AAPL", bid=99.0, ask=101.0, ts_event=3))

    assert state["prices"]["AAPL"] == {"last": 100.0, "bid": 99.0, "ask": 101.0, "ts": 3}


def test_trade_tick_keeps_previous_quote_sides() -> None:
    state = replay([quote("AAPL", bid=99.0, ask=101.0), tick("AAPL", 100.5)])

    assert state["prices"]["AAPL"]["bid"] == 99.0
    assert state["prices"]["AAPL"]["ask"] == 101.0
    assert state["prices"]["AAPL"]["last"] == 100.5


def test_one_sided_quote_marks_at_that_side() -> None:
    state = apply(initial_state(), TickReceived(symbol="AAPL", bid=98.0))

    assert state["prices"]["AAPL"]["last"] == 98.0


def test_tick_without_price_changes_only_meta() -> None:
    start = initial_state()

    state = apply(start, TickReceived(symbol="AAPL", seq=1))

    assert state["prices"] is start["prices"]
    assert state["meta"]["seq"] == 1


def test_bar_marks_at_close() -> None:
    state = replay([quote("MSFT", bid=1.0, ask=2.0), bar("MSFT", close=250.0, ts_event=9)])

    assert state["prices"]["MSFT"] == {"last": 250.0, "bid": 1.0, "ask": 2.0, "ts": 9}


def test_tick_copies_only_the_changed_path() -> None:
    start = replay([tick("AAPL", 1.0), tick("MSFT", 2.0)])

    state = apply(start, tick("AAPL", 3.0))

    assert state["prices"]["MSFT"] is start["prices"]["MSFT"]
    assert state["positions"] is start["positions"]
    assert state["account"] is start["account"]
    assert start["prices"]["AAPL"]["last"] == 1.0


# -- Account and P&L folds: cash adjustments and marked P&L figures -------------------------------
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


# -- Trading-state and runner folds ---------------------------------------------------------------
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


# -- Generic-values fold: StateChanged writes any non-domain path ---------------------------------
def test_state_changed_sets_nested_path_creating_parents() -> None:
    state = apply(initial_state(), state_changed("risk.limits.max_position", 250))

    assert state["risk"]["limits"]["max_position"] == 250


def test_state_changed_keeps_sibling_values() -> None:
    state = replay(
        [state_changed("risk.limits.a", 1), state_changed("risk.limits.b", 2)], initial_state()
    )

    assert dict(state["risk"]["limits"]) == {"a": 1, "b": 2}


def test_state_changed_freezes_lists_and_dicts() -> None:
    state = apply(initial_state(), state_changed("ui.layout", {"cols": [1, 2]}))

    layout = state["ui"]["layout"]
    assert layout["cols"] == (1, 2)
    with pytest.raises(TypeError):
        layout["cols"] = 3


def test_state_changed_replaces_a_leaf_with_a_mapping_when_nested_below_it() -> None:
    state = replay([state_changed("risk.mode", "x"), state_changed("risk.mode.level", 2)])

    assert state["risk"]["mode"] == {"level": 2}


def test_state_changed_under_domain_section_is_ignored() -> None:
    start = initial_state(100.0)

    state = apply(start, state_changed("account.cash", 1e9))

    assert state["account"] is start["account"]


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("risk.limits", True),
        ("ui", True),
        ("", False),
        ("risk..x", False),
        ("risk.*", False),
        ("positions.AAPL", False),
        ("meta.seq", False),
    ],
)
def test_is_generic_path(path: str, ok: bool) -> None:
    assert is_generic_path(path) is ok
