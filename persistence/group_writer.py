"""The writer thread of the event log, shared by both backends: group commit and retries.

One thread owns the store's write handle. It waits until something urgent (a critical or
waited-for row), ``batch_size`` rows or ``flush_interval_s`` calls for a write, takes the whole
queue and has the backend commit it, at most ``max_commit_rows`` rows per transaction
(``_store``). Waiters on any seq the commit covers are then released together. While the
producers the last commit released are about to append again (``group_commit_wait_s``), an
urgent write waits a moment for them, so several share one commit (one fsync).

A failed write is recorded (``healthy`` False, ``last_error``, waiters fail), its handle
dropped (``_drop``), and retried with backoff on a fresh one (``_reconnect``), skipping the
rows the store already holds (a commit covers a prefix of seq, so they are those up to its max
seq). ``close`` may tell it to stop retrying: the rest is reported unwritten.

The backend supplies the hooks below; :class:`persistence.group_commit.GroupCommitLog` the
queue and the waiters.

The writer times each group commit, from taking its rows to having them durable (retries
included), into :class:`CommitTimings`: one ``bisect`` and three additions per commit, not per
event. ``/metrics`` reads it at scrape time as a Prometheus histogram
(``seamless_commit_latency_seconds``, docs/operations.md "Probes and metrics").
"""

from __future__ import annotations

import bisect
import collections
import logging
import threading
import time
from typing import Any, ClassVar, Generic, TypeVar

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


#: One queued event in ``EVENT_COLUMNS`` order (seq first, event_id second, critical eighth).
Row = tuple[Any, ...]
#: What the writer writes through: a DuckDB cursor, a PostgreSQL connection.
H = TypeVar("H")


class GroupWriter(Generic[H]):
    """The writer thread's loop, commit bookkeeping and retries (a base of GroupCommitLog)."""

    _logger: ClassVar[logging.Logger]
    #: The errors of a write that are retried (anything else kills the writer, reported).
    _write_errors: ClassVar[tuple[type[BaseException], ...]]

    path: str
    _lock: threading.Lock
    _wake: threading.Condition
    _durable: threading.Condition
    _stop_retrying: threading.Event
    _pending: list[Row]
    _first_pending_at: float
    _urgent: bool
    _urgent_rows: int
    _urgent_since: float
    _committed_at: float
    _expect: int
    _wait_seqs: collections.Counter[int]
    _closing: bool
    _seq: int
    _committed: int
    _error: str | None
    _failures: int
    _batch_size: int
    _interval: float
    _gather: float
    _max_commit_rows: int
    #: How long each commit took (``/metrics``' commit-latency histogram).
    commit_timings: CommitTimings

    # -- the backend's hooks -----------------------------------------------------------------
    def _writer_handle(self) -> H | None:
        """The writer's first handle (called on the writer thread; None: the first write
        connects)."""
        raise NotImplementedError

    def _store(self, handle: H, rows: list[Row]) -> None:
        """Write ``rows`` and commit them in one transaction (rolled back on any error)."""
        raise NotImplementedError

    def _reconnect(self) -> tuple[H, int]:
        """After a failure: a fresh handle and the highest seq the store holds."""
        raise NotImplementedError

    def _drop(self, handle: H | None) -> None:
        """Close the handle of a failed write (and whatever the retry must not reuse)."""
        raise NotImplementedError

    def _salvage(self, handle: H | None, rows: list[Row], exc: BaseException) -> list[Row] | None:
        """Fewer rows to retry at once after ``exc``, or None: the write failed."""
        return None

    def _on_committed(self, rows: list[Row]) -> bool:
        """Runs after ``rows`` committed, before anyone waiting on them is released; False
        if close gave up."""
        return True

    def _deferred_due(self) -> float | None:
        """When the backend's deferred work (after the commits that released their waiters)
        is due, as ``time.monotonic()`` (now or earlier: at once); None if it has none.
        Called on the writer thread, holding the lock."""
        return None

    def _run_deferred(self, handle: H | None) -> H | None:
        """Do the deferred work if it is due or the log is closing; the handle to go on with,
        or None if close gave up. Called on the writer thread, not holding the lock."""
        return handle

    def _rows_due_in(self, now: float) -> float | None:
        """Seconds until the queued rows must be written (0 or less: now); None if none are
        queued. Called holding the lock."""
        if not self._pending:
            return None
        if self._urgent or self._closing or len(self._pending) >= self._batch_size:
            return 0.0
        remaining = self._first_pending_at + self._interval - now
        if self._urgent_rows:
            # Group commit: the producers the last commit released are about to append
            # again; give them a moment to share this one.
            if self._urgent_rows >= self._expect:
                return 0.0
            since = max(self._urgent_since, self._committed_at)
            remaining = min(remaining, since + self._gather - now)
        return remaining

    @staticmethod
    def _error_text(exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}"

    # -- the writer thread -------------------------------------------------------------------
    def _run_writer(self) -> None:
        try:
            handle: H | None = self._writer_handle()
            while True:
                with self._lock:
                    while True:
                        now = time.monotonic()
                        rows_in = self._rows_due_in(now)
                        due = self._deferred_due()
                        deferred_in = None if due is None else 0.0 if self._closing else due - now
                        if (rows_in is not None and rows_in <= 0) or (
                            deferred_in is not None and deferred_in <= 0
                        ):
                            break
                        if rows_in is None:
                            if self._closing and deferred_in is None:
                                return
                            self._urgent = False
                            self._wake.wait(deferred_in)
                        else:
                            self._wake.wait(
                                rows_in if deferred_in is None else min(rows_in, deferred_in)
                            )
                    rows: list[Row] = []
                    if rows_in is not None and rows_in <= 0:
                        rows = self._pending
                        self._pending = []
                        self._urgent = False
                        self._urgent_rows = 0
                step = self._max_commit_rows
                for start in range(0, len(rows), step):
                    handle = self._write(
                        handle, rows if len(rows) <= step else rows[start : start + step]
                    )
                    if handle is None:
                        return
                handle = self._run_deferred(handle)
                if handle is None and self._stop_retrying.is_set():
                    return
        except BaseException as exc:  # the writer must report, never vanish silently
            self._logger.exception("event log %s: writer died", self.path)
            with self._lock:
                self._error = f"writer thread died: {exc!r}"
                self._durable.notify_all()

    def _write(self, handle: H | None, rows: list[Row]) -> H | None:
        """Commit ``rows`` (retrying until it works); the handle to go on with, or None if
        close gave up on a failing store."""
        batch = rows
        delay = 0.01
        started = time.monotonic()
        while rows:
            try:
                if handle is None:
                    handle, rows = self._recover(rows)
                    if not rows:
                        break
                self._store(handle, rows)
                break
            except self._write_errors as exc:
                failure = exc
                try:
                    kept = self._salvage(handle, rows, exc)
                except self._write_errors as inner:
                    kept, failure = None, inner
                if kept is not None and len(kept) < len(rows):
                    rows = kept
                    continue
                self._failed(handle, failure)
                handle = None
            if self._stop_retrying.wait(delay):
                return None
            delay = min(delay * 2, 1.0)
        if not self._on_committed(batch):
            return None
        self.commit_timings.observe(time.monotonic() - started)
        last = rows[-1][0] if rows else None
        with self._lock:
            if last is not None:
                self._committed = max(self._committed, last)
                released = sum(n for s, n in self._wait_seqs.items() if s <= last)
                self._expect = released + self._urgent_rows
                self._committed_at = time.monotonic()
            self._error = None
            self._durable.notify_all()
        return handle

    def _recover(self, rows: list[Row]) -> tuple[H, list[Row]]:
        """Reconnect after a failure and skip rows a failed-looking commit did store (a
        commit covers a prefix of seq, so they are the rows up to the stored max(seq))."""
        handle, stored = self._reconnect()
        with self._lock:
            self._committed = max(self._committed, min(stored, self._seq))
        return handle, rows[bisect.bisect_right([r[0] for r in rows], stored) :]

    def _failed(self, handle: H | None, exc: BaseException) -> None:
        """Record a failed write and drop its handle (the retry starts from a fresh one)."""
        self._record_failure(self._error_text(exc))
        self._drop(handle)

    def _record_failure(self, message: str) -> None:
        self._logger.error("event log %s: write failed, will retry: %s", self.path, message)
        with self._lock:
            self._error = message
            self._failures += 1
            self._durable.notify_all()
