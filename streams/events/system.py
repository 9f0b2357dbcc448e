"""System events: generic state changes, runner status, heartbeats, commands and errors."""

from __future__ import annotations

import dataclasses
from typing import Any

from streams import topics
from streams.events.base import Event


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class StateChanged(Event):
    """An actor set the value at a state path through ``StateStore.update_state``."""

    TYPE = "state_changed"
    CRITICAL = True
    TOPIC = topics.STATE

    path: str
    value: Any
    actor: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WriteRefused(Event):
    """An actor tried to write a path it does not own; kept as an audit record."""

    TYPE = "write_refused"
    CRITICAL = True
    TOPIC = topics.STATE

    path: str
    actor: str
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _ComponentEvent(Event):
    """The field a component's own events start with; published on ``system.<component>``."""

    component: str

    def default_topic(self) -> str:
        return topics.system(self.component)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunnerStatusChanged(_ComponentEvent):
    """A component's lifecycle moved from ``previous`` to ``status``."""

    TYPE = "runner_status_changed"
    CRITICAL = True

    status: str
    previous: str = ""
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Heartbeat(_ComponentEvent):
    """A component is alive; consumers alarm when heartbeats stop."""

    TYPE = "heartbeat"
    CONFLATED = True

    count: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _CommandEvent(Event):
    """The fields every command event starts with: what was asked and by whom."""

    TOPIC = topics.COMMANDS

    command: str
    actor: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CommandIssued(_CommandEvent):
    """An operator or component asked the engine to do something (start, pause, flatten...)."""

    TYPE = "command_issued"
    CRITICAL = True

    args: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CommandRefused(_CommandEvent):
    """A command was refused (no right, invalid in the current state); kept for the audit."""

    TYPE = "command_refused"
    CRITICAL = True

    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ErrorRaised(Event):
    """Something failed and was isolated: a subscriber, a strategy, a feed, the storage."""

    TYPE = "error_raised"
    TOPIC = topics.ERRORS

    component: str
    message: str
    error_type: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
