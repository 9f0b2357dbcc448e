"""Component lifecycles as explicit transition tables: (state, trigger) -> next state.

A transition the table does not list is refused with :class:`~streams.errors.InvalidTransition`
naming the state and the trigger, so no component can drift into an undefined state.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.errors import InvalidTransition

STOPPED = "stopped"
STARTING = "starting"
RUNNING = "running"
PAUSED = "paused"
STOPPING = "stopping"
HALTED = "halted"
FAULTED = "faulted"

#: The runner's lifecycle. ``halt`` comes from risk (daily loss) or a failed reconciliation;
#: only ``reset`` (an operator command) leaves ``halted`` or ``faulted``.
RUNNER_TRANSITIONS: Mapping[tuple[str, str], str] = {
    (STOPPED, "start"): STARTING,
    (STARTING, "started"): RUNNING,
    (STARTING, "fault"): FAULTED,
    (STARTING, "halt"): HALTED,
    (RUNNING, "pause"): PAUSED,
    (PAUSED, "resume"): RUNNING,
    (RUNNING, "stop"): STOPPING,
    (PAUSED, "stop"): STOPPING,
    (HALTED, "stop"): STOPPING,
    (STOPPING, "stopped"): STOPPED,
    (RUNNING, "halt"): HALTED,
    (PAUSED, "halt"): HALTED,
    (STOPPED, "halt"): HALTED,
    (HALTED, "halt"): HALTED,
    (HALTED, "reset"): RUNNING,
    (RUNNING, "fault"): FAULTED,
    (PAUSED, "fault"): FAULTED,
    (HALTED, "fault"): FAULTED,
    (STOPPING, "fault"): FAULTED,
    (FAULTED, "reset"): STOPPED,
    (FAULTED, "stop"): STOPPED,
}


class Lifecycle:
    """The current state of one component and the table that governs it."""

    def __init__(self, table: Mapping[tuple[str, str], str], initial: str = STOPPED) -> None:
        self.table = table
        self.state = initial

    def allowed(self, trigger: str) -> bool:
        """True if ``trigger`` is valid in the current state."""
        return (self.state, trigger) in self.table

    def triggers(self) -> list[str]:
        """The triggers valid in the current state (for enabling buttons)."""
        return sorted(t for (s, t) in self.table if s == self.state)

    def fire(self, trigger: str) -> tuple[str, str]:
        """Apply ``trigger``; returns (previous, new). Raises InvalidTransition if not allowed."""
        nxt = self.table.get((self.state, trigger))
        if nxt is None:
            allowed = ", ".join(self.triggers()) or "none"
            raise InvalidTransition(f"cannot {trigger!r} while {self.state!r} (allowed: {allowed})")
        previous, self.state = self.state, nxt
        return previous, nxt
