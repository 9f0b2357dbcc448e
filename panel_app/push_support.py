"""What the push bridge (:mod:`panel_app.push`) stands on that needs no bridge of its own.

* :func:`one_message`: a block of changes goes to a session's page as one Bokeh message.
* :func:`once_per_event`: work that is the same for every session (formatting an event into a
  table row) is done once per event; every session's bridge receives the same result.
* :data:`DEADLINES`: the one thread that caps, for every bridge, how long a drain waits for
  the end of the bus's dispatch round.
* :class:`BridgeStats`: the counters one bridge keeps (benchmarks read them).
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from panel.io.document import hold
from panel.io.state import set_curdoc

log = logging.getLogger(__name__)

T = TypeVar("T")

_ONCE_LOCK = threading.Lock()
_ONCE: collections.OrderedDict[tuple[int, str], tuple[object, Any]] = collections.OrderedDict()
#: Entries kept: at the feed's full rate (~500 events/s, each SSE client's frame among them)
#: an entry lives a few seconds, far longer than any session or client takes to use it.
_ONCE_MAX = 4096


@contextlib.contextmanager
def one_message(doc: Any) -> Iterator[None]:
    """Session loop: every change made inside goes to ``doc``'s page as one Bokeh message
    (``doc`` made current, its events held); without a document, changes apply as made."""
    if doc is None:
        yield
        return
    with set_curdoc(doc), hold(doc):
        yield


def once_per_event(event: object, what: str, compute: Callable[[], T]) -> T:
    """``compute()`` for ``event``, computed once however many sessions ask (any thread).

    Every session's subscription receives the same event object from the bus, so the first
    session to ask formats it and the others reuse the result. Entries are keyed by the
    event's identity (checked, so a recycled ``id`` never returns a stale value) and bounded.
    """
    key = (id(event), what)
    with _ONCE_LOCK:
        found = _ONCE.get(key)
        if found is not None and found[0] is event:
            return found[1]
    value = compute()
    with _ONCE_LOCK:
        _ONCE[key] = (event, value)
        while len(_ONCE) > _ONCE_MAX:
            _ONCE.popitem(last=False)
    return value


class Deadlines:
    """One daemon thread that calls ``fn()`` at ``when`` (time.monotonic) for every bridge:
    caps how long a drain waits for the end of a dispatch round (a round held by a slow
    commit must not hold the page)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Have the deadline thread call ``fn()`` once ``time.monotonic()`` reaches ``when``."""
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._ids), fn))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ui-round-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("dashboard: a drain deadline failed")


#: The deadline thread every bridge shares.
DEADLINES = Deadlines()


@dataclass(eq=False)
class BridgeStats:
    """Counters of one bridge (read from any thread; exact enough for benchmarks)."""

    posted: int = 0
    coalesced: int = 0
    drains: int = 0
    applied: int = 0
    failed: int = 0
    drain_ns: int = 0
    toasts_posted: int = 0
    toasts_shown: int = 0

    def as_dict(self) -> dict[str, float]:
        """The counters, plus the mean server-side cost of one applied update and of one drain
        in microseconds (a drain's cost includes flushing the held document changes)."""
        per_update = self.drain_ns / self.applied / 1e3 if self.applied else 0.0
        per_drain = self.drain_ns / self.drains / 1e3 if self.drains else 0.0
        return {
            "posted": self.posted,
            "coalesced": self.coalesced,
            "drains": self.drains,
            "applied": self.applied,
            "failed": self.failed,
            "toasts_posted": self.toasts_posted,
            "toasts_shown": self.toasts_shown,
            "us_per_update": round(per_update, 1),
            "us_per_drain": round(per_drain, 1),
        }
