"""Operator commands fuzzed through a real kernel (DuckDB log, threaded bus, runner, risk).

Random command names, argument dicts and actors: the bus never dies, unauthorized or unknown
commands are refused (``command_refused``, audited in the log) and leave the trading state
unchanged, and every committed event is still in the log afterwards with gapless seqs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import parse_config
from engine.kernel import Kernel
from engine.runner import COMMANDS
from streams.errors import EventError
from streams.events import CommandIssued, CommandRefused, Event
from tests.reliability.test_fuzz_inputs import HOSTILE_TEXT, JSON

OPERATOR = "alice"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    tmp = Path(tmp_path_factory.mktemp("cmd"))
    config = parse_config(
        {
            "storage": {"db_path": str(tmp / "cmd.duckdb")},
            "feed": {"kind": "none"},
            "runner": {"autostart": False, "heartbeat_interval_s": 3600},
            "broker": {"account_path": str(tmp / "broker.json")},
        },
        env={},
    )
    kernel = Kernel.from_config(config, authorize=lambda actor, command: actor == OPERATOR).start()
    seen: list[Event] = []
    kernel.bus.subscribe("commands", seen.append, name="test.commands")
    kernel.seen = seen  # type: ignore[attr-defined]
    yield kernel
    kernel.stop()


def _trading_state(kernel: Kernel) -> dict[str, Any]:
    _, _, state = kernel.store.snapshot()
    return {k: v for k, v in state.items() if k != "meta"}


NAMES = st.one_of(st.sampled_from(COMMANDS), st.text(max_size=20), HOSTILE_TEXT)
ACTORS = st.one_of(
    st.sampled_from(["bob", "viewer", "", "ALICE", "alice ", "anonymous"]),
    st.text(max_size=12),
    HOSTILE_TEXT,
)
ARGS = st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), JSON, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=NAMES, actor=ACTORS, args=ARGS)
def test_refused_commands_change_nothing(
    kernel: Kernel, name: str, actor: str, args: dict[str, Any]
) -> None:
    if actor == OPERATOR or actor in kernel.config.runner.operators:
        return
    before = _trading_state(kernel)
    try:
        issued = kernel.command(name, actor, **args)
    except EventError:  # args that cannot be stored (NaN, ...): refused before publishing
        assert _trading_state(kernel) == before
        return
    assert kernel.bus.join(10)
    refusals = [
        e
        for e in kernel.seen  # type: ignore[attr-defined]
        if isinstance(e, CommandRefused) and e.causation_id == issued.event_id
    ]
    assert len(refusals) == 1, f"{name!r} by {actor!r} was not refused"
    assert _trading_state(kernel) == before


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=NAMES, args=ARGS)
def test_operator_commands_with_random_args_never_break_the_bus(
    kernel: Kernel, name: str, args: dict[str, Any]
) -> None:
    try:
        issued = kernel.command(name, OPERATOR, **args)
    except EventError:
        return
    assert kernel.bus.join(10)
    assert kernel.bus.stats.hook_errors == 0
    if name not in COMMANDS:
        assert any(
            isinstance(e, CommandRefused) and e.causation_id == issued.event_id
            for e in kernel.seen  # type: ignore[attr-defined]
        )


def test_an_unstorable_event_is_dropped_alone_not_with_its_batch(kernel: Kernel) -> None:
    """A publisher bypassing the edge check (NaN in a payload) loses only its own event."""
    from streams.events import ErrorRaised, Heartbeat

    before = kernel.log.last_seq
    good = [Heartbeat(component="fuzz", count=i) for i in range(3)]
    bad = CommandIssued(command="pause", actor="x", args={"n": float("nan")})
    kernel.bus._inbox.put(good[0])
    kernel.bus._inbox.put(bad)  # straight into the inbox, as a buggy component would
    kernel.bus._inbox.put(good[1])
    kernel.bus.publish(good[2])
    assert kernel.bus.join(10)
    stored = {e.event_id for e in kernel.log.read(since_seq=before)}
    assert {e.event_id for e in good} <= stored and bad.event_id not in stored
    errors = [e for e in kernel.log.read(since_seq=before) if isinstance(e, ErrorRaised)]
    assert any(e.causation_id == bad.event_id for e in errors)


def test_after_fuzzing_every_command_is_in_the_log_with_gapless_seq(kernel: Kernel) -> None:
    # Runs last in this module (pytest keeps file order): the whole fuzzed history.
    kernel.command("pause", "nobody")
    assert kernel.bus.join(10)
    events = kernel.log.read()
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    logged = {e.event_id for e in events if isinstance(e, CommandIssued)}
    issued = {e.event_id for e in kernel.seen if isinstance(e, CommandIssued)}  # type: ignore[attr-defined]
    assert issued and issued <= logged
    assert kernel.health()["event_log"]["healthy"]
