"""The port through which the state store makes events durable: the ``Journal`` protocol,
and the journals that write nothing.

The store never imports persistence; the kernel hands it a journal (the DuckDB ``EventLog``
in production, :class:`MemoryJournal` in notebooks and unit tests, :class:`ReplicaJournal` in
read-only mirrors).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from streams.errors import SeamlessError
from streams.events import Event

if TYPE_CHECKING:  # pandas costs ~0.4 s to import: only reads as frames need it
    import pandas as pd

log = logging.getLogger(__name__)


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


class EventLogReader(Protocol):
    """The reads of a journal that keeps its events (the event logs of ``persistence``, and a
    mirror's): what the dashboard, notebooks and replays read, defined once here so that the
    readers need not import persistence. ``healthy`` is False while writes fail."""

    @property
    def healthy(self) -> bool:
        """False while writes fail (the engine must halt trading)."""
        ...

    def read(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Stored events with ``since_seq < seq <= until_seq`` matching the filters, by seq."""
        ...

    def read_df(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
        *,
        newest: bool = False,
    ) -> pd.DataFrame:
        """The same rows as ``read``, as a DataFrame of the stored columns (with ``newest``,
        the newest ``limit`` of them, oldest first)."""
        ...

    def iter_batches(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        batch_size: int = 50_000,
    ) -> Iterator[list[Event]]:
        """``read`` in bounded batches (for replays that must not hold the whole log)."""
        ...


class VolatileJournal:
    """The bookkeeping of a journal that writes nothing: ``seq`` is final as soon as it is assigned.

    There is nothing to wait for, so ``wait_durable`` returns at once and ``flush`` just reports
    the last seq. Subclasses decide in ``append`` what they keep and advance ``_seq``:
    :class:`MemoryJournal` here, and the mirrors' :class:`ReplicaJournal`.
    """

    def __init__(self, start_seq: int = 0) -> None:
        self._seq = start_seq

    def wait_durable(self, seq: int) -> None:
        return None

    def flush(self) -> int:
        return self._seq

    @property
    def last_seq(self) -> int:
        return self._seq


class MemoryJournal(VolatileJournal):
    """A journal that keeps events in a list: durable only as long as the process lives.

    For notebooks, unit tests and quick backtests that do not need a file.
    """

    def __init__(self, start_seq: int = 0) -> None:
        super().__init__(start_seq)
        self._lock = threading.Lock()
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


class ReplicaJournal(VolatileJournal):
    """A read-only replica's journal: it takes events another node already sequenced, in order,
    without writing (used by mirrors, :mod:`engine.mirror`, whose store folds a book's
    committed events in seq order, exactly once).

    ``append`` keeps an event whose seq is exactly ``last_seq + 1``; an older seq (a duplicate
    from a redelivery) or a local event without seq returns None, so it is neither folded nor
    delivered. A newer seq means events were missed: the mirror backfills them from the log
    first, so reaching here with a gap is a bug and raises.
    """

    def __init__(self, last_seq: int) -> None:
        super().__init__(last_seq)
        self.dropped = 0

    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        if event.seq <= self._seq:
            self.dropped += 1
            if event.seq == 0:
                log.warning("mirror: local %s not shown (a mirror records nothing)", event.type)
            return None
        if event.seq != self._seq + 1:
            raise SeamlessError(f"mirror: got seq {event.seq} after {self._seq} (a gap)")
        self._seq = event.seq
        return event
