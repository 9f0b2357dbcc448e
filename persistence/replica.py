"""A journal for a read-only replica: it takes events another node already sequenced.

Used by mirrors (:mod:`engine.mirror`): the local state store folds a book's committed events in
seq order, exactly once, without writing anything.
"""

from __future__ import annotations

import logging

from streams.errors import SeamlessError
from streams.events import Event

log = logging.getLogger(__name__)


class ReplicaJournal:
    """A journal that takes events already sequenced elsewhere, in order, without writing.

    ``append`` keeps an event whose seq is exactly ``last_seq + 1``; an older seq (a duplicate
    from a redelivery) or a local event without seq returns None, so it is neither folded nor
    delivered. A newer seq means events were missed: the mirror backfills them from the log
    first, so reaching here with a gap is a bug and raises.
    """

    def __init__(self, last_seq: int) -> None:
        self._seq = last_seq
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

    def wait_durable(self, seq: int) -> None:
        return None

    def flush(self) -> int:
        return self._seq

    @property
    def last_seq(self) -> int:
        return self._seq
