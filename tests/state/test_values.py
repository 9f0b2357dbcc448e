"""Generic-values fold: StateChanged writes any non-domain path."""

from __future__ import annotations

import pytest

from state.fold import apply, replay
from state.model import initial_state
from state.values import is_generic_path
from tests.factories import state_changed


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
