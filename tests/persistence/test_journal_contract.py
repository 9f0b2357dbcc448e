"""The contract run against the journals that are not event logs: memory and replica.

Both implement only the :class:`~state.journal.Journal` protocol (append, wait_durable, flush,
last_seq), not the rest of :class:`~persistence.recorder.Recorder`, so each declares those
capabilities off (and says why); the contract's capability test checks the declarations
against the objects, and the recorder tests that need them are deselected for these classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from state.journal import MemoryJournal, ReplicaJournal
from streams.errors import SeamlessError
from streams.events import Event
from tests.persistence.builders import fill, tick
from tests.persistence.recorder_contract import RecorderContract


class TestMemoryJournal(RecorderContract):
    """``state.journal.MemoryJournal``: events in a list, for notebooks, unit tests and quick
    backtests.

    It assigns seq and keeps every event (``.events``), remembering every event id for ever.
    Off: ``durable`` (it lives as long as the process: a new one starts empty), reads,
    snapshots, runs and the hash chain (it has none of those methods: the kernel uses an event
    log whenever restore, history or verification is wanted), and ``bounded_dedup`` (it has
    no ``dedup_window``: no id is ever forgotten, so no duplicate is stored again).
    """

    supports_reads = False
    supports_snapshots = False
    supports_runs = False
    supports_chain = False
    durable = False
    bounded_dedup = False

    def make(self, **options: Any) -> MemoryJournal:
        if options:
            raise TypeError(f"MemoryJournal takes no options, got {sorted(options)}")
        return MemoryJournal()

    @contextmanager
    def opened(self, **options: Any) -> Iterator[Any]:
        yield self.make(**options)  # nothing to open or close

    def stored(self, journal: Any) -> list[Event]:
        return list(journal.events)

    def test_a_start_seq_continues_the_numbering(self) -> None:
        journal = MemoryJournal(start_seq=41)
        stored = journal.append(fill(1), wait=True)
        assert stored is not None and stored.seq == journal.last_seq == journal.flush() == 42


class TestReplicaJournal(RecorderContract):
    """``state.journal.ReplicaJournal``: a mirror's journal (engine/mirror.py), fed
    events another node's recorder already sequenced, in seq order, writing nothing.

    Off: ``assigns_seq`` (the seq comes from upstream: the :meth:`sequenced` hook stamps the
    next one, as the book's recorder did; an event without one is refused), ``keeps_events``
    (it keeps only ``last_seq``: the mirror's state store holds the folded state and the
    book's log the events), ``durable`` (a mirror restores from the book's log and starts a
    new replica at its seq), reads, snapshots, runs and the chain (none of those methods: a
    mirror reads history from the book's own recorder) and ``bounded_dedup`` (duplicates are
    recognised by seq, not by a window of ids: a redelivery carries a seq it already has).
    """

    assigns_seq = False
    keeps_events = False
    supports_reads = False
    supports_snapshots = False
    supports_runs = False
    supports_chain = False
    durable = False
    bounded_dedup = False

    def make(self, **options: Any) -> ReplicaJournal:
        if options:
            raise TypeError(f"ReplicaJournal takes no options, got {sorted(options)}")
        return ReplicaJournal(last_seq=0)

    @contextmanager
    def opened(self, **options: Any) -> Iterator[Any]:
        yield self.make(**options)  # nothing to open or close

    def sequenced(self, journal: Any, event: Event) -> Event:
        return event.with_seq(journal.last_seq + 1)

    def test_a_gap_in_the_upstream_seq_is_refused(self) -> None:
        journal = ReplicaJournal(last_seq=10)
        assert journal.append(tick(1).with_seq(10)) is None  # already have it
        with pytest.raises(SeamlessError, match="got seq 12 after 10"):
            journal.append(tick(2).with_seq(12))
        kept = journal.append(tick(3).with_seq(11))
        assert kept is not None and journal.last_seq == journal.flush() == 11
        assert journal.dropped == 1
