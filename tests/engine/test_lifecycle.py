"""The runner's lifecycle table: every listed transition works, every other one is refused."""

from __future__ import annotations

import itertools

import pytest

from engine.runner import (
    FAULTED,
    HALTED,
    PAUSED,
    RUNNER_TRANSITIONS,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    Lifecycle,
)
from streams.errors import InvalidTransition, SeamlessError

STATES = (STOPPED, STARTING, RUNNING, PAUSED, STOPPING, HALTED, FAULTED)
TRIGGERS = sorted({trigger for _, trigger in RUNNER_TRANSITIONS} | {"flatten", "explode"})
INVALID = [
    (state, trigger)
    for state, trigger in itertools.product(STATES, TRIGGERS)
    if (state, trigger) not in RUNNER_TRANSITIONS
]


@pytest.mark.parametrize(("state", "trigger"), sorted(RUNNER_TRANSITIONS))
def test_every_listed_transition_moves_to_its_next_state(state: str, trigger: str) -> None:
    lifecycle = Lifecycle(RUNNER_TRANSITIONS, state)

    previous, new = lifecycle.fire(trigger)

    assert (previous, new) == (state, RUNNER_TRANSITIONS[(state, trigger)])
    assert lifecycle.state == new


@pytest.mark.parametrize(("state", "trigger"), INVALID)
def test_every_other_transition_is_refused_naming_state_and_trigger(
    state: str, trigger: str
) -> None:
    lifecycle = Lifecycle(RUNNER_TRANSITIONS, state)

    with pytest.raises(InvalidTransition, match=f"cannot '{trigger}' while '{state}'"):
        lifecycle.fire(trigger)

    assert lifecycle.state == state


def test_the_table_only_uses_known_states() -> None:
    used = {s for s, _ in RUNNER_TRANSITIONS} | set(RUNNER_TRANSITIONS.values())

    assert used == set(STATES)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (STOPPED, ["halt", "start"]),
        (RUNNING, ["fault", "halt", "pause", "stop"]),
        (PAUSED, ["fault", "halt", "resume", "stop"]),
        (HALTED, ["fault", "halt", "reset", "stop"]),
        (FAULTED, ["reset", "stop"]),
    ],
)
def test_triggers_lists_what_is_allowed_now(state: str, expected: list[str]) -> None:
    assert Lifecycle(RUNNER_TRANSITIONS, state).triggers() == expected


def test_only_reset_leaves_halted_for_running() -> None:
    lifecycle = Lifecycle(RUNNER_TRANSITIONS, HALTED)

    assert not lifecycle.allowed("resume")
    assert not lifecycle.allowed("start")
    assert lifecycle.fire("reset") == (HALTED, RUNNING)


def test_a_full_session_start_pause_resume_halt_reset_stop() -> None:
    lifecycle = Lifecycle(RUNNER_TRANSITIONS)
    path = [lifecycle.state]

    for trigger in ("start", "started", "pause", "resume", "halt", "reset", "stop", "stopped"):
        path.append(lifecycle.fire(trigger)[1])

    assert path == [STOPPED, STARTING, RUNNING, PAUSED, RUNNING, HALTED, RUNNING, STOPPING, STOPPED]


def test_the_refusal_lists_the_allowed_triggers_and_is_a_seamless_error() -> None:
    lifecycle = Lifecycle(RUNNER_TRANSITIONS, STOPPED)

    with pytest.raises(SeamlessError, match=r"\(allowed: halt, start\)"):
        lifecycle.fire("pause")
