"""The PostgreSQL event log: one engine's stream in a database that several nodes share.

``PostgresEventLog`` implements :class:`persistence.recorder.Recorder` with the DuckDB log's
semantics (see :mod:`persistence.event_log`): seq assigned on append in the caller's thread,
one writer thread group-committing the queue (critical and waited-for rows at once, others in
batches written with COPY), idempotent event ids, failed writes retried with backoff while
``healthy`` is False and every waiter gets PersistenceError (never a false acknowledgement).
``synchronous_commit`` makes a commit durable (WAL flushed) before it is acknowledged.

Across streams, each commit takes a transaction-scoped advisory lock, reads the highest
``gseq`` and numbers its rows after it: ``gseq`` is gapless, follows commit order, and a
commit becomes visible before the next one can take the lock, so a reader never sees gseq
``n + 1`` without ``n``. ``fence(connection)`` runs inside every write transaction before
COMMIT: the lease check that makes a node which lost its stream fail its writes.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from contextlib import suppress
from typing import Any

import psycopg

from persistence.codec import EVENT_COLUMNS, EventCodec
from persistence.pg.connect import ConnectionPool, connect_writer, redact
from persistence.pg.reads import PgReads
from persistence.pg.schema import GSEQ_LOCK, migrate
from persistence.pg.stored import Fence, PgStored
from persistence.pg.writer import PgWriter, Row
from streams.errors import PersistenceError
from streams.events import Event

log = logging.getLogger(__name__)

_COPY = f"COPY events (stream, gseq, {', '.join(EVENT_COLUMNS)}) FROM STDIN"
_OPEN_STREAMS: set[tuple[str, str]] = set()  # one writer per (database, stream) per process
_OPEN_STREAMS_LOCK = threading.Lock()


class PostgresEventLog(PgWriter, PgReads, PgStored):
    """The append-only event log of one stream (``stream``, the engine's book) in PostgreSQL.

    ``dsn``: a libpq connection string or URL. ``batch_size``, ``flush_interval_s``,
    ``dedup_window``, ``max_pending``, ``max_commit_rows``, ``close_timeout_s`` and
    ``group_commit_wait_s`` mean what they mean for the DuckDB ``EventLog``. ``fence``: called
    with the connection inside every write transaction before COMMIT; raising (e.g.
    LeaseLostError) fails the write.

    Thread-safe. Use ``open()``/``close()`` or ``with PostgresEventLog(dsn) as log:``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        stream: str = "default",
        batch_size: int = 10_000,
        flush_interval_s: float = 0.05,
        dedup_window: int = 200_000,
        max_pending: int = 1_000_000,
        max_commit_rows: int = 100_000,
        close_timeout_s: float = 10.0,
        group_commit_wait_s: float = 0.001,
        fence: Fence | None = None,
    ) -> None:
        if not isinstance(stream, str) or not stream or len(stream) > 200:
            raise PersistenceError(f"stream must be a non-empty name, got {stream!r}")
        if batch_size < 1:
            raise PersistenceError(f"batch_size must be >= 1, got {batch_size!r}")
        if flush_interval_s <= 0:
            raise PersistenceError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        if dedup_window < 0:
            raise PersistenceError(f"dedup_window must be >= 0, got {dedup_window!r}")
        self.dsn = dsn
        self.stream = stream
        #: Where the log lives, for messages: the DSN without password, and the stream.
        self.path = f"{redact(dsn)}#{stream}"
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._window = dedup_window
        self._max_pending = max(max_pending, batch_size)
        self._max_commit_rows = max(max_commit_rows, 1)
        self._close_timeout = close_timeout_s
        self._gather = group_commit_wait_s
        self._fence = fence
        self._copy_sql = _COPY
        self._codec = EventCodec()
        self._codecs = self._codec.codecs
        self._pool = ConnectionPool(dsn, f"event log {self.path}")

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the writer waits here
        self._durable = threading.Condition(self._lock)  # waiters on a commit wait here
        self._stop_retrying = threading.Event()
        self._writer: threading.Thread | None = None
        self._con: psycopg.Connection | None = None  # the writer's connection
        self._pending: list[Row] = []
        self._first_pending_at = 0.0
        self._urgent = False
        self._urgent_rows = 0
        self._urgent_since = 0.0
        self._committed_at = 0.0
        self._expect = 0
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
        self._key = (self.path, stream)

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> PostgresEventLog:
        """Connect, apply missing migrations, load seq and dedup ids, start the writer."""
        if self._open:
            return self
        with _OPEN_STREAMS_LOCK:
            if self._key in _OPEN_STREAMS:
                raise PersistenceError(f"event log {self.path} is already open in this process")
            _OPEN_STREAMS.add(self._key)
        try:
            try:
                self._con = connect_writer(self.dsn)
            except psycopg.Error as exc:
                raise PersistenceError(f"cannot open event log {self.path}: {exc}") from exc
            migrate(self._con)
            try:
                self._load(self._con)
            except psycopg.Error as exc:
                raise PersistenceError(f"cannot load event log {self.path}: {exc}") from exc
        except BaseException:
            self._disconnect()
            with _OPEN_STREAMS_LOCK:
                _OPEN_STREAMS.discard(self._key)
            raise
        self._pool.open()
        self._closing = False
        self._error = None
        self._open = True
        self._stop_retrying.clear()
        self._writer = threading.Thread(target=self._run_writer, name="pg-log-writer", daemon=True)
        self._writer.start()
        return self

    def close(self) -> None:
        """Write and commit everything queued, stop the writer and disconnect.

        Raises PersistenceError if queued events could not be written within
        ``close_timeout_s`` (they are lost; the database holds a consistent prefix).
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
                writer.join(30.0)
        with self._lock:
            unwritten = self._seq - self._committed
            self._open = False
            self._durable.notify_all()
        self._disconnect()
        self._pool.close()
        with _OPEN_STREAMS_LOCK:
            _OPEN_STREAMS.discard(self._key)
        if unwritten:
            raise PersistenceError(
                f"event log {self.path} closed with {unwritten} event(s) not written "
                f"(last committed seq {self._committed}): {self._error}"
            )

    def __enter__(self) -> PostgresEventLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _disconnect(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with suppress(psycopg.Error):
                con.close()

    def _load(self, con: psycopg.Connection) -> None:
        with con.transaction():
            # A commit still in flight (e.g. sent by a writer that was just killed) holds the
            # gseq lock until it ends: wait for it, so max(seq) below includes its rows.
            con.execute("SELECT pg_advisory_xact_lock(%s)", [GSEQ_LOCK])
            row = con.execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE stream = %s", [self.stream]
            ).fetchone()
            ids = con.execute(
                "SELECT event_id FROM events WHERE stream = %s AND critical", [self.stream]
            ).fetchall()
            recent = con.execute(
                "SELECT event_id FROM events WHERE stream = %s AND NOT critical "
                "ORDER BY seq DESC LIMIT %s",
                [self.stream, self._window],
            ).fetchall()
        self._seq = self._committed = int(row[0]) if row else 0
        self._critical_ids = {r[0] for r in ids}
        self._recent_order = collections.deque(r[0] for r in reversed(recent))
        self._recent_ids = set(self._recent_order)

    # -- the Journal protocol ----------------------------------------------------------------
    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        """Assign the next seq to ``event``, queue it, and return the event carrying the seq.

        With ``wait`` return only once it is committed (PersistenceError if the write fails).
        Critical events are written at once; others in batches.

        Idempotence as in the DuckDB ``EventLog.append``: a known ``event_id`` returns None
        without consuming a seq. Beyond it (DuckDB stores such a duplicate again), a
        non-critical duplicate older than ``dedup_window`` is dropped by the writer on the
        UNIQUE(stream, event_id) constraint (its seq stays a hole, counted in
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
                raise PersistenceError(f"event log {self.path} is not open")
            if event_id in self._critical_ids or event_id in self._recent_ids:
                duplicate_of = self._seq
            else:
                duplicate_of = -1
                while len(self._pending) >= self._max_pending:
                    if self._error is not None:
                        raise PersistenceError(
                            f"event log {self.path} is failing and {len(self._pending)} "
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
                # One tuple per row (EVENT_COLUMNS order): the writer COPYs them.
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
                        f"event log {self.path} could not commit seq {seq} "
                        f"(last committed {self._committed}): {self._error}"
                    )
                if not self._open:
                    raise PersistenceError(
                        f"event log {self.path} closed before seq {seq} was committed"
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
        """Counters for monitoring: seqs, queue length, failures, dropped duplicates."""
        with self._lock:
            return {
                "stream": self.stream,
                "last_seq": self._seq,
                "committed_seq": self._committed,
                "pending": len(self._pending),
                "healthy": self.healthy,
                "last_error": self._error,
                "write_failures": self._failures,
                "dropped_duplicates": self._dropped_duplicates,
            }
