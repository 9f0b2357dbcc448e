"""The live strategy runner: lifecycle, operator commands, feeds and heartbeats.

Commands arrive as ``command_issued`` events (from the CLI, the dashboard or the kernel) and
are handled on the engine thread. Each carries the actor; an actor without the right, or a
command the lifecycle table does not allow now, gets a ``command_refused`` event (audited) and
nothing changes. Every lifecycle move is a ``runner_status_changed`` event. The lifecycle is an
explicit transition table, (state, trigger) -> next state (:data:`RUNNER_TRANSITIONS`): a
transition it does not list is refused with :class:`~streams.errors.InvalidTransition` naming
the state and the trigger, so the runner cannot drift into an undefined state.

An Rx heartbeat source on its own scheduler thread publishes a heartbeat every
``heartbeat_interval_s`` of wall time so dashboards and monitors can tell a quiet engine from
a dead one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from reactivex import abc
from reactivex.scheduler import EventLoopScheduler

from engine.strategy_host import StrategyHost
from streams import topics
from streams.bus import EventBus
from streams.clock import Clock
from streams.errors import EventError, InvalidTransition, SeamlessError
from streams.events import (
    ACTIVE,
    CommandIssued,
    CommandRefused,
    ErrorRaised,
    Event,
    Heartbeat,
    RunnerStatusChanged,
    TradingStateChanged,
)
from streams.operators import heartbeats

COMMANDS = (
    "start",
    "pause",
    "resume",
    "stop",
    "flatten",
    "reset",
    "set_params",
    "set_speed",
    "set_risk_limits",
    "halt",
)
COMPONENT = "runner"

log = logging.getLogger(__name__)

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


class Feed(Protocol):
    """What the runner needs of a market-data feed."""

    def start(self) -> object: ...
    def stop(self) -> object: ...


class RiskControls(Protocol):
    """What the runner needs of the risk engine."""

    def reset(self, actor: str) -> Any: ...
    def halt(self, actor: str, reason: str) -> Any: ...
    def flatten_all(self, actor: str, reason: str = "") -> Any: ...
    def set_limits(self, limits: Mapping[str, Any]) -> Any: ...


class LiveStrategyRunner:
    """Drives strategies and feeds through an explicit lifecycle, on operator commands."""

    def __init__(
        self,
        *,
        publish: Callable[[Event], None],
        clock: Clock,
        host: StrategyHost,
        risk: RiskControls,
        feed_factory: Callable[[], Feed | None] | None = None,
        authorize: Callable[[str, str], bool] = lambda actor, command: True,
        heartbeat_interval_s: float = 1.0,
        initial_status: str = "stopped",
        trading_state: Callable[[], str] = lambda: ACTIVE,
        store: Any = None,
    ) -> None:
        self._publish = publish
        self._clock = clock
        self.host = host
        self.risk = risk
        self._feed_factory = feed_factory
        self.feed: Feed | None = None
        self._authorize = authorize
        self._trading_state = trading_state
        self._store = store
        self._heartbeat_interval_s = heartbeat_interval_s
        self.lifecycle = Lifecycle(RUNNER_TRANSITIONS, initial_status)
        self._beats: abc.DisposableBase | None = None
        self._beat_scheduler: EventLoopScheduler | None = None

    @property
    def status(self) -> str:
        """The runner's lifecycle state."""
        return self.lifecycle.state

    def attach(self, bus: EventBus) -> list[abc.DisposableBase]:
        """Listen for commands and for trading-state changes from risk."""
        return [
            bus.subscribe(topics.COMMANDS, self._on_command, name="runner:commands"),
            bus.subscribe(topics.RISK, self._on_risk, name="runner:risk"),
        ]

    def command(self, command: str, actor: str, **args: Any) -> CommandIssued:
        """Publish a command as ``actor`` (any thread); it is handled on the engine thread.

        EventError (nothing published) if ``args`` cannot be stored as strict JSON: a NaN or
        an object in the args would otherwise only fail at commit, on the engine thread."""
        try:
            json.dumps(args, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise EventError(f"command {command!r}: args cannot be stored as JSON: {exc}") from None
        event = CommandIssued(
            command=command, actor=actor, args=args, ts_event=self._clock.now_ns()
        )
        self._publish(event)
        return event

    # -- heartbeats (own scheduler thread) --------------------------------------------------
    def start_heartbeats(self) -> None:
        """Publish a heartbeat every ``heartbeat_interval_s`` of wall time (live and replaying
        engines; backtests do without): an Rx :func:`~streams.operators.heartbeats` source on
        its own scheduler thread. Each beat's ``ts_event`` is the engine clock (the data's time
        in a replay), its ``ts_init`` the wall time it was made, by which its age is judged."""
        if self._beats is not None or self._heartbeat_interval_s <= 0:
            return
        self._beat_scheduler = EventLoopScheduler(
            thread_factory=lambda target: threading.Thread(
                target=target, name="runner-heartbeat", daemon=True
            )
        )
        source = heartbeats(
            COMPONENT, self._heartbeat_interval_s, self._beat_scheduler, clock=self._clock
        )
        self._beats = source.subscribe(on_next=self._send_beat, on_error=self._beats_failed)

    def stop_heartbeats(self) -> None:
        """Stop the heartbeats and their scheduler thread."""
        beats, self._beats = self._beats, None
        if beats is not None:
            beats.dispose()
        scheduler, self._beat_scheduler = self._beat_scheduler, None
        if scheduler is not None:
            scheduler.dispose()

    def _send_beat(self, beat: Heartbeat) -> None:
        # Runs on the scheduler thread: nothing may escape it (it would end the thread).
        try:
            self._publish(beat)
        except SeamlessError:
            beats = self._beats
            if beats is not None:
                beats.dispose()  # the bus is closed: the engine is stopping

    def _beats_failed(self, error: Exception) -> None:
        log.error("runner heartbeats stopped: %r", error)

    # -- command handling (engine thread) --------------------------------------------------
    def _on_command(self, event: Event) -> None:
        if not isinstance(event, CommandIssued):
            return
        if event.command not in COMMANDS:
            self._refuse(event, f"unknown command {event.command!r} (known: {', '.join(COMMANDS)})")
            return
        if not self._authorize(event.actor, event.command):
            self._refuse(event, f"actor {event.actor!r} may not {event.command!r}")
            return
        try:
            getattr(self, f"_do_{event.command}")(event)
        except (InvalidTransition, SeamlessError, ValueError) as exc:
            self._refuse(event, str(exc))

    def _do_start(self, event: CommandIssued) -> None:
        self._transition("start", event)
        try:
            self.host.start()
            if self._feed_factory is not None:
                self.feed = self._feed_factory()  # a feed runs once: each start gets a new one
                if self.feed is not None:
                    self.feed.start()
        except Exception as exc:
            self._fault(exc, event)
            return
        self._transition("started", event)
        trading = self._trading_state()
        if trading != ACTIVE:
            self._transition("halt", event, reason=f"trading is {trading} (restored)")

    def _do_pause(self, event: CommandIssued) -> None:
        self._transition("pause", event)
        self.host.paused = True

    def _do_resume(self, event: CommandIssued) -> None:
        self._transition("resume", event)
        self.host.paused = False

    def _do_stop(self, event: CommandIssued) -> None:
        self._transition("stop", event)
        if self.feed is not None:
            self.feed.stop()
        self.host.stop()
        self._transition("stopped", event)

    def _do_flatten(self, event: CommandIssued) -> None:
        self.risk.flatten_all(event.actor, reason=str(event.args.get("reason", "operator flatten")))

    def _do_reset(self, event: CommandIssued) -> None:
        if self.status == FAULTED:
            self._transition("reset", event)
            return
        if self.status != HALTED:
            raise InvalidTransition(f"cannot 'reset' while {self.status!r} (nothing is halted)")
        self.risk.reset(event.actor)  # its trading_state_changed(active) moves us to running

    def _do_halt(self, event: CommandIssued) -> None:
        # Through risk, on the engine thread: the halt is a committed trading_state_changed.
        self.risk.halt(event.actor, str(event.args.get("reason", f"halt by {event.actor}")))

    def _do_set_params(self, event: CommandIssued) -> None:
        name = event.args.get("strategy")
        params = event.args.get("params")
        if not isinstance(name, str) or not isinstance(params, dict):
            raise ValueError("set_params needs args {'strategy': name, 'params': {...}}")
        self.host.set_params(name, params)

    def _do_set_risk_limits(self, event: CommandIssued) -> None:
        limits = event.args.get("limits")
        if not isinstance(limits, dict) or not limits:
            raise ValueError("set_risk_limits needs args {'limits': {name: value, ...}}")
        self.risk.set_limits(limits)
        if self._store is not None:
            # Kept in state so a restart starts with the limits the operator last set.
            current = dict(self._store.get_state("risk.limits", None) or {})
            self._store.update_state("risk.limits", current | limits, actor="risk")

    def _do_set_speed(self, event: CommandIssued) -> None:
        speed = event.args.get("speed")
        set_speed = getattr(self.feed, "set_speed", None)
        if set_speed is None:
            raise ValueError("no running feed has an adjustable speed")
        set_speed(speed)

    # -- reactions to risk -----------------------------------------------------------------
    def _on_risk(self, event: Event) -> None:
        if not isinstance(event, TradingStateChanged):
            return
        if event.state != ACTIVE and self.lifecycle.allowed("halt") and self.status != HALTED:
            self._transition("halt", None, reason=event.reason)
        elif event.state == ACTIVE and self.status == HALTED:
            self._transition("reset", None, reason=f"trading resumed by {event.actor}")

    # -- helpers ---------------------------------------------------------------------------
    def _transition(self, trigger: str, cause: CommandIssued | None, reason: str = "") -> None:
        previous, status = self.lifecycle.fire(trigger)
        self._publish(
            RunnerStatusChanged(
                component=COMPONENT,
                status=status,
                previous=previous,
                reason=reason or (f"{cause.command} by {cause.actor}" if cause else trigger),
                ts_event=self._clock.now_ns(),
                causation_id=cause.event_id if cause else None,
            )
        )
        if status == RUNNING:
            self.host.paused = False

    def _refuse(self, event: CommandIssued, reason: str) -> None:
        self._publish(
            CommandRefused(
                command=event.command,
                actor=event.actor,
                reason=reason,
                ts_event=self._clock.now_ns(),
                causation_id=event.event_id,
            )
        )

    def _fault(self, exc: Exception, cause: CommandIssued) -> None:
        self._publish(
            ErrorRaised(
                component=COMPONENT,
                message=f"{type(exc).__name__}: {exc}",
                error_type=type(exc).__name__,
                ts_event=self._clock.now_ns(),
                causation_id=cause.event_id,
            )
        )
        self._transition("fault", cause, reason=str(exc))
