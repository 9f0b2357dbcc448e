"""Snapshot migrations: v1 -> v2 and the errors for versions this code cannot read."""

from __future__ import annotations

import json

import pytest

from state.fold import replay
from state.migrations import SchemaVersionError, migrate
from state.model import SCHEMA_VERSION, StateSchemaError, state_from_dict, state_to_dict
from tests.factories import tick, with_seqs

V1_SNAPSHOT = {
    "seq": 42,
    "cash": 8_500.0,
    "starting_cash": 10_000.0,
    "realized_pnl": 120.0,
    "commissions": 4.0,
    "positions": {"AAPL": 10, "MSFT": -5, "OLD": 0},
    "avg_prices": {"AAPL": 150.0, "MSFT": 300.0},
    "prices": {"AAPL": 155.0},
    "trading_state": "halted",
    "runner": {"runner": "running"},
}


def test_v1_snapshot_restores_to_current_shape() -> None:
    data = migrate(json.loads(json.dumps(V1_SNAPSHOT)), 1)

    state = state_from_dict(data)

    assert state["meta"]["seq"] == 42
    assert state["meta"]["schema_version"] == SCHEMA_VERSION
    assert state["positions"]["AAPL"] == {"qty": 10.0, "avg_price": 150.0, "realized_pnl": 0.0}
    assert state["positions"]["MSFT"] == {"qty": -5.0, "avg_price": 300.0, "realized_pnl": 0.0}
    assert state["positions"]["OLD"]["avg_price"] == 0.0
    assert dict(state["account"]) == {
        "cash": 8_500.0,
        "starting_cash": 10_000.0,
        "commissions": 4.0,
        "realized_pnl": 120.0,
    }
    assert state["prices"]["AAPL"]["last"] == 155.0
    assert state["trading"]["state"] == "halted"
    assert state["runner"]["runner"] == "running"
    assert state["pnl"]["equity"] == pytest.approx(8_500.0 + 10 * 155.0 - 5 * 300.0)


def test_migrated_state_keeps_folding() -> None:
    state = state_from_dict(migrate(V1_SNAPSHOT, 1))

    after = replay(with_seqs([tick("AAPL", 160.0)], start=43), state)

    assert after["prices"]["AAPL"]["last"] == 160.0
    assert after["meta"]["seq"] == 43


def test_migrate_does_not_change_its_input() -> None:
    before = json.dumps(V1_SNAPSHOT, sort_keys=True)

    migrate(V1_SNAPSHOT, 1)

    assert json.dumps(V1_SNAPSHOT, sort_keys=True) == before


def test_current_version_passes_through_as_a_copy() -> None:
    data = state_to_dict(replay(with_seqs([tick()])))

    out = migrate(data, SCHEMA_VERSION)

    assert out == data
    assert out is not data


def test_future_version_is_refused_clearly() -> None:
    with pytest.raises(SchemaVersionError, match=r"3 is newer.*\(2\)"):
        migrate({}, 3)


@pytest.mark.parametrize("version", [0, -1])
def test_unknown_old_version_is_refused(version: int) -> None:
    with pytest.raises(SchemaVersionError, match=f"{version} is unknown"):
        migrate({}, version)


def test_non_integer_version_is_refused() -> None:
    with pytest.raises(SchemaVersionError, match="'2'"):
        migrate({}, "2")  # type: ignore[arg-type]


def test_malformed_v1_data_names_the_field() -> None:
    with pytest.raises(StateSchemaError, match="'cash'"):
        migrate({"seq": 1, "positions": {}}, 1)
    with pytest.raises(StateSchemaError, match=r"positions\.AAPL.*'ten'"):
        migrate({"seq": 1, "cash": 0.0, "positions": {"AAPL": "ten"}}, 1)
