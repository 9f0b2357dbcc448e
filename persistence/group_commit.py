"""Group commit: the machinery both event-log backends share (DuckDB's ``EventLog`` and
PostgreSQL's ``PostgresEventLog``), implementing :class:`state.journal.Journal`.

- **Seq assignment.** ``append`` assigns the next ``seq`` under a lock, in the caller's thread,
  and queues the row (one tuple in ``EVENT_COLUMNS`` order); the returned event carries it.
- **Idempotence.** Checked in memory by ``append``, before a seq is assigned: a critical
  event_id already stored is never stored again; a non-critical one not if it is among the
  last ``dedup_window`` (default 200,000) non-critical events. The ids are loaded at open.
- **One writer.** A single writer thread takes the whole queue and has the backend commit it,
  at most ``max_commit_rows`` rows per transaction. Rows are queued and written in seq order,
  so every commit covers a prefix of seq: a crash loses only a suffix of events nobody waited
  for, and after reopen seq continues at ``max(seq) + 1``.
- **Group commit.** Every caller waiting on a seq at or below the committed one is released by
  the same commit. Critical events and waited-for events are written at once (after at most
  ``group_commit_wait_s`` for the producers the last commit released to share the next one);
  others when ``batch_size`` rows are queued, ``flush_interval_s`` after the first of them was
  queued, or on ``flush``/``close``.
- **Hash chain.** The backend's ``_store`` links the rows it writes into the hash chain
  (:mod:`persistence.chain`) from ``_chain_head``, on the writer thread, in seq order, and
  moves the head only once they are written; the caller of ``append`` pays nothing for it.
- **Failures.** A failed write is rolled back and retried with backoff after reconnecting,
  skipping the rows a commit that looked failed did store; while it fails ``healthy`` is
  False, ``last_error`` says why, and every waiter gets :class:`PersistenceError` (never a false
  acknowledgement). The engine must halt trading.

A backend supplies the store: ``_open_key``, ``_open_store`` (connect, create or repair, then
``_loaded``), ``_abort_open`` and ``_release_store`` (:mod:`persistence.log_lifecycle`: open,
close and health), and the writer's hooks
(:mod:`persistence.group_writer`: ``_writer_handle``, ``_store``, ``_reconnect``, ``_drop``,
optionally ``_salvage`` and ``_on_committed``).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, TypedDict

from persistence.chain import GENESIS
from persistence.codec import EventCodec
from persistence.group_writer import CommitTimings, H, Row
from persistence.log_lifecycle import LogLifecycle
from streams.errors import PersistenceError
from streams.events import Event

__all__ = ["GroupCommitLog", "LogOptions", "Row"]


class LogOptions(TypedDict, total=False):
    """The tuning both backends take as keyword arguments (see :class:`GroupCommitLog`)."""

    batch_size: int
    flush_interval_s: float
    dedup_window: int
    max_pending: int
    max_commit_rows: int
    close_timeout_s: float
    group_commit_wait_s: float


class GroupCommitLog(LogLifecycle[H]):
    """Seqs, dedup, the pending queue, the writer thread and its retries (see the module doc).

    ``batch_size``: non-critical rows that trigger a write. ``flush_interval_s``: the longest a
    non-critical row waits to be written. ``dedup_window``: how many recent non-critical event
    ids are remembered. ``max_pending``: queued rows above which ``append`` blocks (and raises
    while unhealthy). ``max_commit_rows``: the most rows in one transaction.
    ``close_timeout_s``: how long ``close`` keeps retrying a failing write before giving up.
    ``group_commit_wait_s``: how long an urgent write waits for more producers.
    """

    def __init__(
        self,
        path: str,
        label: str,
        holder: str,
        *,
        batch_size: int = 10_000,
        flush_interval_s: float = 0.05,
        dedup_window: int = 200_000,
        max_pending: int = 1_000_000,
        max_commit_rows: int = 100_000,
        close_timeout_s: float = 10.0,
        group_commit_wait_s: float = 0.001,
    ) -> None:
        if batch_size < 1:
            raise PersistenceError(f"batch_size must be >= 1, got {batch_size!r}")
        if flush_interval_s <= 0:
            raise PersistenceError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        if dedup_window < 0:
            raise PersistenceError(f"dedup_window must be >= 0, got {dedup_window!r}")
        #: Where the log lives, for messages.
        self.path = path
        self._label = label  # "event log <where>", for messages
        self._holder = holder  # what "is already open in this process"
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._window = dedup_window
        self._max_pending = max(max_pending, batch_size)
        self._max_commit_rows = max(max_commit_rows, 1)
        self._close_timeout = close_timeout_s
        self._gather = group_commit_wait_s
        self._codec = EventCodec()
        self.commit_timings = CommitTimings()
        self._codecs = self._codec.codecs

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the writer waits here
        self._durable = threading.Condition(self._lock)  # waiters on a commit wait here
        self._stop_retrying = threading.Event()
        self._writer: threading.Thread | None = None
        self._claimed = None
        self._pending: list[Row] = []  # queued rows, in seq order
        self._first_pending_at = 0.0
        self._urgent = False  # someone waits in flush/wait_durable: write what is queued now
        self._urgent_rows = 0  # queued critical or waited-for rows
        self._urgent_since = 0.0
        self._committed_at = 0.0
        self._expect = 0  # waiters the last commit released: their next appends are coming
        self._wait_seqs: collections.Counter[int] = collections.Counter()
        self._closing = False
        self._open = False
        self._seq = 0
        self._committed = 0
        self._error: str | None = None
        self._failures = 0
        self._dropped_duplicates = 0
        self._critical_ids: set[str] = set()
        self._recent_ids: set[str] = set()
        self._recent_order: collections.deque[str] = collections.deque()
        #: The hash of the last row written (the writer thread's: the next rows chain on).
        self._chain_head = GENESIS

    # -- the Journal protocol ----------------------------------------------------------------
    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        """Assign the next seq to ``event``, queue it, and return the event carrying the seq.

        With ``wait`` return only once it is committed (PersistenceError if the write fails).
        Critical events are written at once; others in batches.

        Idempotence: an event whose ``event_id`` is already in the log is not stored again
        and ``None`` is returned (no seq consumed; with ``wait``, after everything appended
        so far is durable). Ids are checked in memory, before a seq is assigned: every critical
        id is remembered for ever, non-critical ids only for the last ``dedup_window``
        non-critical events. A non-critical duplicate older than the window gets a new seq:
        DuckDB stores it again (its file has no index on event_id: DuckDB would keep it in
        memory, growing without bound); PostgreSQL's writer drops it on
        UNIQUE(stream, event_id) (the seq stays a hole, counted in
        ``stats()['dropped_duplicates']``).

        A payload that cannot be stored as JSON (NaN, infinity, an unserialisable value)
        raises EventError here, before a seq is assigned.
        """
        codec = self._codecs.get(type(event)) or self._codec.for_class(type(event))
        payload = codec.encode(event)
        event_id = event.event_id
        critical = codec.critical
        with self._lock:
            if not self._open or self._closing:
                raise PersistenceError(f"{self._label} is not open")
            if event_id in self._critical_ids or event_id in self._recent_ids:
                duplicate_of = self._seq
            else:
                duplicate_of = -1
                while len(self._pending) >= self._max_pending:
                    if self._error is not None:
                        raise PersistenceError(
                            f"{self._label} is failing and {len(self._pending)} "
                            f"events are queued: {self._error}"
                        )
                    self._wake.notify()
                    self._durable.wait(0.1)
                seq = self._seq = self._seq + 1
                pending = self._pending
                if not pending:
                    # The idle writer waits without a timeout: start its flush clock.
                    self._first_pending_at = time.monotonic()
                    self._wake.notify()
                # One tuple per row (EVENT_COLUMNS order): the writer turns the batch into
                # what its store takes, off this (the engine's) thread.
                pending.append(
                    (
                        seq,
                        event_id,
                        event.ts_event,
                        event.ts_init,
                        event.topic,
                        codec.type_name,
                        event.schema_version,
                        critical,
                        payload,
                        event.correlation_id,
                        event.causation_id,
                    )
                )
                if critical or wait:
                    if not self._urgent_rows:
                        self._urgent_since = time.monotonic()
                    self._urgent_rows += 1
                    self._wake.notify()
                if critical:
                    self._critical_ids.add(event_id)
                else:
                    if self._window:
                        self._recent_ids.add(event_id)
                        self._recent_order.append(event_id)
                        if len(self._recent_order) > self._window:
                            self._recent_ids.discard(self._recent_order.popleft())
                    if len(pending) >= self._batch_size:
                        self._wake.notify()
        if duplicate_of >= 0:
            if wait:
                self.wait_durable(duplicate_of)
            return None
        if wait:
            self.wait_durable(seq)
        return codec.clone(event, seq)

    def wait_durable(self, seq: int) -> None:
        """Block until every event up to ``seq`` is committed.

        Raises PersistenceError if writes are failing (the event is not known to be durable;
        it stays queued and is written if the store recovers) or the log is closed first.
        """
        with self._lock:
            if seq > self._seq:
                raise PersistenceError(f"seq {seq} was never assigned (last seq {self._seq})")
            while self._committed < seq:
                self._raise_if_failing(
                    seq, "commit", "committed", f"last committed {self._committed}"
                )
                if not self._urgent_rows:
                    self._urgent = True
                    self._wake.notify()
                self._wait_seqs[seq] += 1
                try:
                    self._durable.wait()
                finally:
                    self._wait_seqs[seq] -= 1
                    if not self._wait_seqs[seq]:
                        del self._wait_seqs[seq]

    def flush(self) -> int:
        """Commit everything appended so far and return the last committed seq."""
        with self._lock:
            target = self._seq
        if target:
            self.wait_durable(target)
        return self._committed

    @property
    def last_seq(self) -> int:
        """The highest seq assigned so far (0 for an empty log)."""
        return self._seq

    @property
    def committed_seq(self) -> int:
        """The highest seq known to be committed (every seq up to it is durable)."""
        return self._committed

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: seqs, queue length, failures, dropped duplicates.

        ``dropped_duplicates`` counts non-critical duplicates older than ``dedup_window`` that
        the store refused (PostgreSQL); always 0 for DuckDB, which stores them again.
        """
        with self._lock:
            return {
                "last_seq": self._seq,
                "committed_seq": self._committed,
                "pending": len(self._pending),
                "healthy": self.healthy,
                "last_error": self._error,
                "write_failures": self._failures,
                "dropped_duplicates": self._dropped_duplicates,
            }
