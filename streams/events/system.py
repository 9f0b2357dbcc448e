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

    path: str
    value: Any
    actor: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def default_topic(self) -> str:
        return topics.STATE


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WriteRefused(Event):
    """An actor tried to write a path it does not own; kept as an audit record."""

    TYPE = "write_refused"
    CRITICAL = True

    path: str
    actor: str
    reason: str

    def default_topic(self) -> str:
        return topics.STATE


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunnerStatusChanged(Event):
    """A component's lifecycle moved from ``previous`` to ``status``."""

    TYPE = "runner_status_changed"
    CRITICAL = True

    component: str
    status: str
    previous: str = ""
    reason: str = ""

    def default_topic(self) -> str:
        return topics.system(self.component)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Heartbeat(Event):
    """A component is alive; consumers alarm when heartbeats stop."""

    TYPE = "heartbeat"

    component: str
    count: int = 0

    def default_topic(self) -> str:
        return topics.system(self.component)

    def conflation_key(self) -> str | None:
        return self.topic


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CommandIssued(Event):
    """An operator or component asked the engine to do something (start, pause, flatten...)."""

    TYPE = "command_issued"
    CRITICAL = True

    command: str
    actor: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def default_topic(self) -> str:
        return topics.COMMANDS


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CommandRefused(Event):
    """A command was refused (no right, invalid in the current state); kept for the audit."""

    TYPE = "command_refused"
    CRITICAL = True

    command: str
    actor: str
    reason: str

    def default_topic(self) -> str:
        return topics.COMMANDS


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ErrorRaised(Event):
    """Something failed and was isolated: a subscriber, a strategy, a feed, the storage."""

    TYPE = "error_raised"

    component: str
    message: str
    error_type: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def default_topic(self) -> str:
        return topics.ERRORS
