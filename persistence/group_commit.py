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
``_loaded``), ``_abort_open`` and ``_release_store`` here, and the writer's hooks
(:mod:`persistence.group_writer`: ``_writer_handle``, ``_store``, ``_reconnect``, ``_drop``,
optionally ``_salvage`` and ``_on_committed``).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Hashable, Iterable
from typing import Any, ClassVar, Self

from persistence.chain import GENESIS, head_bytes
from persistence.codec import EventCodec
from persistence.commit_timings import CommitTimings
from persistence.group_writer import GroupWriter, H, Row
from streams.errors import PersistenceError
from streams.events import Event

__all__ = ["GroupCommitLog", "Row"]

# One writer per store per process: a second open of the same file (DuckDB would silently
# share it) or stream would assign the same seqs.
_OPEN_KEYS: set[Hashable] = set()
_OPEN_KEYS_LOCK = threading.Lock()


class GroupCommitLog(GroupWriter[H]):
    """Seqs, dedup, the pending queue, the writer thread and its retries (see the module doc).

    ``batch_size``: non-critical rows that trigger a write. ``flush_interval_s``: the longest a
    non-critical row waits to be written. ``dedup_window``: how many recent non-critical event
    ids are remembered. ``max_pending``: queued rows above which ``append`` blocks (and raises
    while unhealthy). ``max_commit_rows``: the most rows in one transaction.
    ``close_timeout_s``: how long ``close`` keeps retrying a failing write before giving up.
    ``group_commit_wait_s``: how long an urgent write waits for more producers.
    """

    _writer_name: ClassVar[str]
    #: How long ``close`` waits for a writer told to stop retrying (None: as long as it takes).
    _stop_join_s: ClassVar[float | None] = None

    def __init__(
        self,
        path: str,
        label: str,
        holder: str,
        *,
        batch_size: int,
        flush_interval_s: float,
        dedup_window: int,
        max_pending: int,
        max_commit_rows: int,
        close_timeout_s: float,
        group_commit_wait_s: float,
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
        self._claimed: Hashable = None
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

    # -- the backend's hooks -----------------------------------------------------------------
    def _open_key(self) -> Hashable:
        """What identifies the store (one writer per key per process)."""
        raise NotImplementedError

    def _open_store(self) -> None:
        """Connect, create or repair the store, and call ``_loaded`` with what it holds."""
        raise NotImplementedError

    def _abort_open(self) -> None:
        """Release what a failed ``_open_store`` acquired."""
        raise NotImplementedError

    def _release_store(self) -> None:
        """Disconnect at ``close`` (the writer has stopped)."""
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> Self:
        """Open (creating if needed) the store, load seq and dedup ids, start the writer."""
        if self._open:
            return self
        key = self._claimed = self._open_key()
        with _OPEN_KEYS_LOCK:
            if key in _OPEN_KEYS:
                raise PersistenceError(f"{self._holder} is already open in this process")
            _OPEN_KEYS.add(key)
        try:
            self._open_store()
        except BaseException:
            self._abort_open()
            with _OPEN_KEYS_LOCK:
                _OPEN_KEYS.discard(key)
            raise
        self._closing = False
        self._open = True
        self._stop_retrying.clear()
        self._writer = threading.Thread(
            target=self._run_writer, name=self._writer_name, daemon=True
        )
        self._writer.start()
        return self

    def close(self) -> None:
        """Write and commit everything queued, stop the writer and release the store.

        Raises PersistenceError if queued events could not be written within
        ``close_timeout_s`` (they are lost; the store holds a consistent prefix).
        """
        if not self._open:
            return
        with self._lock:
            self._closing = True
            self._wake.notify()
        writer = self._writer
        if writer is not None:
            writer.join(self._close_timeout)
            if writer.is_alive():
                self._stop_retrying.set()
                writer.join(self._stop_join_s)
        with self._lock:
            unwritten = self._seq - self._committed
            self._open = False
            self._durable.notify_all()
        self._release_store()
        with _OPEN_KEYS_LOCK:
            _OPEN_KEYS.discard(self._claimed)
        if unwritten:
            raise PersistenceError(
                f"{self._label} closed with {unwritten} event(s) not written "
                f"(last committed seq {self._committed}): {self._error}"
            )

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loaded(
        self,
        last_seq: int,
        critical_ids: Iterable[str],
        recent: Iterable[str],
        chain_head: bytes = GENESIS,
    ) -> None:
        """Take what the store holds: its max seq, every critical id, the last
        ``dedup_window`` non-critical ids (``recent``, newest first) and the chain head."""
        self._chain_head = chain_head
        self._seq = self._committed = last_seq
        self._critical_ids = set(critical_ids)
        self._recent_order = collections.deque(reversed(list(recent)))
        self._recent_ids = set(self._recent_order)

    def _chain_head_of(self, last_seq: int, stored: bytes | None) -> bytes:
        """The head the next rows chain on from: the stored hash of the row at ``last_seq``
        (GENESIS for an empty log). A row without one (written outside the log) cannot be
        chained on: GENESIS, logged; ``verify_chain`` reports that row."""
        if last_seq and stored is None:
            self._logger.error(
                "event log %s: the last stored row (seq %d) has no chain hash; new rows chain "
                "on from the genesis hash and verify_chain will report seq %d",
                self.path,
                last_seq,
                last_seq,
            )
        return head_bytes(stored)

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
                if self._error is not None:
                    raise PersistenceError(
                        f"{self._label} could not commit seq {seq} "
                        f"(last committed {self._committed}): {self._error}"
                    )
                if not self._open:
                    raise PersistenceError(f"{self._label} closed before seq {seq} was committed")
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

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self._open

    @property
    def healthy(self) -> bool:
        """False while writes are failing or the writer is not running: halt trading."""
        writer = self._writer
        return self._error is None and self._open and writer is not None and writer.is_alive()

    @property
    def last_error(self) -> str | None:
        """Why the last write failed, while the log is failing; None once a write succeeds."""
        return self._error

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
