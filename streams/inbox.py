"""The bus's bounded, thread-safe inbox with a stated overflow policy.

Policy when the inbox holds ``capacity`` events:

* critical events, and non-critical events without a conflation key, block the publisher
  until there is room (back-pressure: nothing is dropped);
* non-critical events with a conflation key (market data, P&L figures, heartbeats) are kept
  latest-per-key in a side table; an older value still waiting there is replaced, and each
  replacement is counted in ``conflated``.

Once a key is waiting in the side table, newer events for that key replace it even when the
main queue has room again, so a consumer never sees an older value after a newer one.
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
        self._latest: dict[str, Event] = {}
        self._closed = False
        self._consumer_waiting = False
        self._producers_waiting = 0
        self._unfinished = 0
        self.conflated = 0
        self.high_water = 0
        self.blocked_puts = 0

    def __len__(self) -> int:
        return len(self._items) + len(self._latest)

    def put(self, event: Event) -> None:
        """Enqueue ``event``; may block (see the policy). Raises RuntimeError once closed."""
        key = None if event.critical else event.conflation_key()
        with self._cond:
            if self._closed:
                raise RuntimeError("inbox closed")
            if key is not None and (key in self._latest or len(self._items) >= self.capacity):
                if key in self._latest:
                    self.conflated += 1
                    del self._latest[key]  # re-insert so first-arrival order follows the newest
                else:
                    self._unfinished += 1
                self._latest[key] = event
                if self._consumer_waiting:
                    self._cond.notify_all()
                return
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
            if not self._items and not self._latest:
                self._consumer_waiting = True
                self._cond.wait(timeout)
                self._consumer_waiting = False
            batch: list[Event] = []
            items = self._items
            while items and len(batch) < max_items:
                batch.append(items.popleft())
            if not batch and self._latest:
                batch = list(self._latest.values())
                self._latest.clear()
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
