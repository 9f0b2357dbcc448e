"""The bus's bounded, thread-safe inbox: back-pressure, never silent loss.

Policy when the inbox holds ``capacity`` events:

* :meth:`Inbox.put` blocks the publisher until there is room. Every event meant for the engine
  (market data included: strategies and the broker must see every bar and tick) goes this way,
  so a feed that outruns the engine is slowed down instead of losing data.
* :meth:`Inbox.offer` never blocks: it returns False when the inbox is full. It is for a live
  feed that cannot wait (a socket that the venue would drop); that feed counts what it could
  not hand in and records the count as a ``data_dropped`` event (see
  :class:`~streams.sources.feed.FeedBase`).

Conflation (latest value per key) is for view consumers only: the dashboard tiers and the SSE
endpoint apply it downstream of the bus with the operators in :mod:`streams.operators`.
"""

from __future__ import annotations

import threading
from collections import deque

from streams.events import Event


class Inbox:
    """A bounded multi-producer, single-consumer queue of events (see the module policy)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"inbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[Event] = deque()
        self._closed = False
        self._consumer_waiting = False
        self._producers_waiting = 0
        self._unfinished = 0
        self.high_water = 0
        #: Puts that had to wait for room (back-pressure applied to a publisher).
        self.blocked_puts = 0
        #: Offers refused because the inbox was full.
        self.refused_offers = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """True when a put would block (a hint: another thread may take or put meanwhile)."""
        return len(self._items) >= self.capacity

    def put(self, event: Event) -> None:
        """Enqueue ``event``, waiting for room while full. Raises RuntimeError once closed."""
        with self._cond:
            if self._closed:
                raise RuntimeError("inbox closed")
            if len(self._items) >= self.capacity:
                self.blocked_puts += 1
                self._producers_waiting += 1
                try:
                    while len(self._items) >= self.capacity and not self._closed:
                        self._cond.wait()
                finally:
                    self._producers_waiting -= 1
                if self._closed:
                    raise RuntimeError("inbox closed")
            self._enqueue(event)

    def offer(self, event: Event) -> bool:
        """Enqueue ``event`` if there is room now; False (nothing queued) when full.

        Raises RuntimeError once closed."""
        with self._cond:
            if self._closed:
                raise RuntimeError("inbox closed")
            if len(self._items) >= self.capacity:
                self.refused_offers += 1
                return False
            self._enqueue(event)
            return True

    def _enqueue(self, event: Event) -> None:
        self._items.append(event)
        self._unfinished += 1
        depth = len(self._items)
        if depth > self.high_water:
            self.high_water = depth
        if self._consumer_waiting:
            self._cond.notify_all()

    def take(self, max_items: int, timeout: float | None) -> list[Event]:
        """Up to ``max_items`` events in arrival order; [] if none arrived within ``timeout``."""
        with self._cond:
            if not self._items:
                self._consumer_waiting = True
                self._cond.wait(timeout)
                self._consumer_waiting = False
            batch: list[Event] = []
            items = self._items
            while items and len(batch) < max_items:
                batch.append(items.popleft())
            if batch and self._producers_waiting:
                self._cond.notify_all()
            return batch

    def task_done(self, count: int) -> None:
        """The consumer finished ``count`` taken events; wakes :meth:`join` when none are left."""
        with self._cond:
            self._unfinished -= count
            if self._unfinished <= 0:
                self._cond.notify_all()

    def join(self, timeout: float | None) -> bool:
        """Wait until every event put so far has been taken and finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unfinished <= 0, timeout)

    def close(self) -> None:
        """Refuse further puts and wake everybody waiting."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
