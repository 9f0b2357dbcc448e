"""How long the event log's commits take: a fixed-bucket histogram the writer thread fills.

The writer thread times each group commit, from taking its rows to having them durable
(retries included), and adds it here: one ``bisect`` and three additions per commit, not per
event. ``/metrics`` reads it at scrape time as a Prometheus histogram
(``seamless_commit_latency_seconds``, docs/operations.md "Probes and metrics").
"""

from __future__ import annotations

import bisect
import threading

#: Upper bounds (seconds) of the buckets: from a journal append without fsync to a retry storm.
COMMIT_BUCKETS_S: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class CommitTimings:
    """Commit durations in :data:`COMMIT_BUCKETS_S` buckets (last bucket: above them all).

    One writer thread observes; any thread reads :meth:`snapshot` (a copy under a lock, so a
    scrape never sees a count without its sum).
    """

    def __init__(self, bounds: tuple[float, ...] = COMMIT_BUCKETS_S) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """Count one commit that took ``seconds``."""
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def snapshot(self) -> tuple[list[int], float]:
        """Per-bucket counts (not cumulative; one more than ``bounds``) and the sum of seconds."""
        with self._lock:
            return list(self._counts), self._sum
