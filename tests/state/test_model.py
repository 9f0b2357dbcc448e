"""The state value: immutability, shape, conversions and validation."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from state.fold import replay
from state.model import (
    SCHEMA_VERSION,
    FrozenDict,
    StateSchemaError,
    assoc_in,
    freeze,
    get_path,
    initial_state,
    state_from_dict,
    state_to_dict,
)
from streams.errors import SnapshotCorrupted
from tests.factories import buy, order_submitted, quote, state_changed, with_seqs


def full_state() -> FrozenDict:
    return replay(
        with_seqs(
            [
                quote("AAPL", 99.0, 101.0),
                buy(10, 100.0, commission=1.0),
                order_submitted("o1", limit_price=99.5, order_type="limit"),
                state_changed("risk.limits", {"max": [1, 2], "on": True}),
            ]
        ),
        initial_state(5000.0),
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.__setitem__("x", 1),
        lambda d: d.__delitem__("positions"),
        lambda d: d.update(x=1),
        lambda d: d.pop("positions"),
        lambda d: d.popitem(),
        lambda d: d.setdefault("x", 1),
        lambda d: d.clear(),
    ],
)
def test_frozen_dict_refuses_every_mutator(mutate) -> None:
    state = initial_state()

    with pytest.raises(TypeError, match="immutable"):
        mutate(state)
    assert "x" not in state
    assert "positions" in state


def test_frozen_dict_refuses_in_place_or() -> None:
    state = initial_state()

    with pytest.raises(TypeError):
        state |= {"x": 1}


def test_frozen_dict_pickles_and_copies() -> None:
    state = full_state()

    assert pickle.loads(pickle.dumps(state)) == state
    assert copy.deepcopy(state) is state
    assert copy.copy(state) is state


def test_initial_state_shape() -> None:
    state = initial_state(1000.0)

    assert set(state) == {
        "positions",
        "account",
        "pnl",
        "prices",
        "trading",
        "runner",
        "orders",
        "meta",
    }
    assert state["account"]["cash"] == 1000.0
    assert state["trading"]["state"] == "active"
    assert state["meta"]["schema_version"] == SCHEMA_VERSION == 2


def test_state_to_dict_is_plain_json_and_round_trips() -> None:
    state = full_state()

    plain = state_to_dict(state)
    restored = state_from_dict(json.loads(json.dumps(plain)))

    assert type(plain) is dict
    assert type(plain["positions"]["AAPL"]) is dict
    assert plain["risk"]["limits"]["max"] == [1, 2]
    assert restored == state
    assert isinstance(restored["risk"]["limits"], FrozenDict)


def test_get_path_reads_nested_values() -> None:
    state = full_state()

    assert get_path(state, "positions.AAPL.qty") == 10.0
    assert get_path(state, "") is state
    assert get_path(state, "positions.MSFT", None) is None


def test_get_path_missing_names_path_and_segment() -> None:
    with pytest.raises(KeyError, match=r"positions\.MSFT\.qty.*'MSFT'"):
        get_path(initial_state(), "positions.MSFT.qty")


def test_assoc_in_copies_only_the_path() -> None:
    state = full_state()

    new = assoc_in(state, ("risk", "limits", "on"), False)

    assert new["risk"]["limits"]["on"] is False
    assert state["risk"]["limits"]["on"] is True
    assert new["positions"] is state["positions"]


def test_freeze_is_deep() -> None:
    value = freeze({"a": [{"b": 1}]})

    assert isinstance(value["a"][0], FrozenDict)
    assert value["a"] == (FrozenDict(b=1),)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("account.cash", "lots", r"'account\.cash'.*'lots'.*number"),
        ("positions.AAPL.qty", None, r"'positions\.AAPL\.qty'.*None.*number"),
        ("meta.seq", 1.5, r"'meta\.seq'.*1\.5.*integer"),
        ("trading.state", 3, r"'trading\.state'.*3.*string"),
        ("prices", [], r"'prices'.*object"),
        ("meta.schema_version", 1, r"schema_version.*1.*migrate"),
        ("pnl.equity", float("nan"), r"'pnl\.equity'.*NaN"),
        ("pnl.session_start", 1.5, r"'pnl\.session_start'.*1\.5.*integer"),
    ],
)
def test_state_from_dict_names_field_value_and_expectation(
    path: str, value: object, message: str
) -> None:
    data = state_to_dict(full_state())
    node = data
    *parents, leaf = path.split(".")
    for seg in parents:
        node = node[seg]
    node[leaf] = value

    with pytest.raises(StateSchemaError, match=message):
        state_from_dict(data)


def test_state_from_dict_missing_section() -> None:
    data = state_to_dict(initial_state())
    del data["orders"]

    with pytest.raises(StateSchemaError, match="orders"):
        state_from_dict(data)


def test_schema_error_is_a_snapshot_corruption() -> None:
    with pytest.raises(SnapshotCorrupted):
        state_from_dict({"not": "a state"})
