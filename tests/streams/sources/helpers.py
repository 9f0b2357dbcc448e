"""Shared test helpers for the market-data sources: an event recorder and a polling wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from streams.events import BarReceived, DataRejected, ErrorRaised, Event, TickReceived


class Recorder:
    """A thread-safe stand-in for ``EventBus.publish`` that keeps what it receives."""

    def __init__(self, on_event: Callable[[Event], None] | None = None) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []
        self.on_event = on_event

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    @property
    def market(self) -> list[TickReceived | BarReceived]:
        return [e for e in self.snapshot() if isinstance(e, TickReceived | BarReceived)]

    @property
    def ticks(self) -> list[TickReceived]:
        return [e for e in self.snapshot() if isinstance(e, TickReceived)]

    @property
    def bars(self) -> list[BarReceived]:
        return [e for e in self.snapshot() if isinstance(e, BarReceived)]

    @property
    def rejected(self) -> list[DataRejected]:
        return [e for e in self.snapshot() if isinstance(e, DataRejected)]

    @property
    def errors(self) -> list[ErrorRaised]:
        return [e for e in self.snapshot() if isinstance(e, ErrorRaised)]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


class FakeSleep:
    """Records requested sleeps instead of sleeping (the feed keeps virtual time from them)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    @property
    def total(self) -> float:
        return sum(self.calls)
