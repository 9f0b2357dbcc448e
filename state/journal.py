"""The port through which the state store makes events durable: the ``Journal`` protocol.

The store never imports persistence; the kernel hands it a journal (the DuckDB ``EventLog``
in production, :class:`MemoryJournal` in notebooks and unit tests).
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from streams.events import Event


@runtime_checkable
class Journal(Protocol):
    """An append-only, totally ordered record of events.

    ``append`` assigns the next ``seq`` synchronously (so the returned event carries it) and
    queues the event for writing; events are written in ``seq`` order and every commit covers a
    prefix of that order. With ``wait=True`` the call returns only after the event is committed.
    An event whose ``event_id`` was appended before is not stored again: ``append`` returns None.
    A journal may bound how far back it remembers ids: the event logs remember every critical
    id but only the last ``dedup_window`` non-critical ones (persistence/recorder.py).
    """

    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        """Assign ``seq`` and queue ``event``; with ``wait`` block until it is durable."""
        ...

    def wait_durable(self, seq: int) -> None:
        """Block until every event up to ``seq`` is committed (raise PersistenceError if never)."""
        ...

    def flush(self) -> int:
        """Commit everything appended so far and return the last committed seq."""
        ...

    @property
    def last_seq(self) -> int:
        """The highest seq assigned so far (0 for an empty journal)."""
        ...


class MemoryJournal:
    """A journal that keeps events in a list: durable only as long as the process lives.

    For notebooks, unit tests and quick backtests that do not need a file.
    """

    def __init__(self, start_seq: int = 0) -> None:
        self._lock = threading.Lock()
        self._seq = start_seq
        self._ids: set[str] = set()
        self.events: list[Event] = []

    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        with self._lock:
            if event.event_id in self._ids:
                return None
            self._ids.add(event.event_id)
            self._seq += 1
            stored = event.with_seq(self._seq)
            self.events.append(stored)
            return stored

    def wait_durable(self, seq: int) -> None:
        return None

    def flush(self) -> int:
        return self._seq

    @property
    def last_seq(self) -> int:
        return self._seq
