"""The DuckDB event log: the engine's durable, totally ordered record of events.

One DuckDB file per engine. ``EventLog`` implements :class:`state.journal.Journal`:

- **Seq assignment.** ``append`` assigns the next ``seq`` under a lock, in the caller's
  thread, and queues the row; the returned event carries the seq.
- **One writer.** A single writer thread owns the read-write connection. It takes the whole
  queue, inserts it as one Arrow batch and commits it in one transaction. Rows are queued and
  written in seq order, so every commit covers a prefix of seq: a crash loses only a suffix
  of events nobody waited for, and after reopen seq continues at ``max(seq) + 1``.
- **Group commit.** Every caller waiting on a seq at or below the committed one is released by
  the same commit (one fsync, about 1 ms). Critical events and waited-for events are written
  at once; others when ``batch_size`` rows are queued, ``flush_interval_s`` after the first
  of them was queued, or on ``flush``/``close``.
- **Idempotence.** Checked in memory by ``append``, before a seq is assigned: a critical
  event_id already stored is never stored again; a non-critical one not if it is among the
  last ``dedup_window`` (default 200,000) non-critical events. An older non-critical duplicate
  is stored again. The file has no index on event_id (only the ``seq`` primary key): DuckDB
  keeps indexes wholly in memory, so one over every event id would grow for ever. A file
  written with the old ``UNIQUE(event_id)`` is migrated once at open (see
  ``EventLog._drop_event_id_index``).
- **Failures.** A failed write (disk full, I/O error) is rolled back and retried with
  backoff; while it fails ``healthy`` is False, ``last_error`` says why, and every waiter gets
  :class:`PersistenceError` (never a false acknowledgement). The engine must halt trading.
- **Reads** run on their own DuckDB cursors, so they never wait for the writer; they flush
  first, so a reader sees everything appended before the call.
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from persistence.codec import EVENT_COLUMNS, EventCodec, dumps, row_to_event
from persistence.critical_journal import CriticalJournal
from persistence.queries import EventFilter, build_where
from persistence.records import RunRecord, SkippedSnapshot, Snapshot, SnapshotLookup
from streams.errors import EventError, PersistenceError
from streams.events import Event

log = logging.getLogger(__name__)

# No index on event_id: DuckDB keeps every ART index (UNIQUE, PRIMARY KEY) wholly in memory
# and cannot evict it, so a UNIQUE(event_id) grew resident memory by ~6.7 MiB per 100k events
# for ever (docs/reliability.md, Soak). Idempotence is EventLog's in-memory dedup instead; the
# seq primary key is cheap (sequential keys).
_EVENTS_COLUMNS = """(
        seq BIGINT PRIMARY KEY,
        event_id VARCHAR NOT NULL,
        ts_event BIGINT NOT NULL,
        ts_init BIGINT NOT NULL,
        topic VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        schema_version INTEGER NOT NULL,
        critical BOOLEAN NOT NULL,
        payload JSON NOT NULL,
        correlation_id VARCHAR,
        causation_id VARCHAR
    )"""

_DDL = (
    "CREATE TABLE IF NOT EXISTS events " + _EVENTS_COLUMNS,
    """
    CREATE TABLE IF NOT EXISTS snapshots (
        id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        schema_version INTEGER NOT NULL,
        state JSON NOT NULL,
        checksum VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        how VARCHAR NOT NULL,
        config_hash VARCHAR,
        pid INTEGER
    )
    """,
)

_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("ts_event", pa.int64()),
        ("ts_init", pa.int64()),
        ("topic", pa.string()),
        ("type", pa.string()),
        ("schema_version", pa.int32()),
        ("critical", pa.bool_()),
        ("payload", pa.string()),
        ("correlation_id", pa.string()),
        ("causation_id", pa.string()),
    ]
)
_SELECT = "SELECT " + ", ".join(EVENT_COLUMNS) + " FROM events"

# Files written before the UNIQUE(event_id) was dropped are rebuilt once at open, in one
# transaction (see EventLog._drop_event_id_index); the statements run between BEGIN and COMMIT.
_MIGRATION_TABLE = "events__migrating"
_MIGRATE_EVENTS: tuple[str, ...] = (
    f"DROP TABLE IF EXISTS {_MIGRATION_TABLE}",
    f"CREATE TABLE {_MIGRATION_TABLE} " + _EVENTS_COLUMNS,
    f"INSERT INTO {_MIGRATION_TABLE} SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY seq",
    "DROP TABLE events",
    f"ALTER TABLE {_MIGRATION_TABLE} RENAME TO events",
)

# DuckDB locks a file per process, but a second connect() from the *same* process silently
# shares the open database; two writers would then assign the same seqs. This set is the
# in-process half of the one-writer-per-file lock.
_OPEN_PATHS: set[str] = set()
_OPEN_PATHS_LOCK = threading.Lock()

RUNNING, CLEAN, CRASHED = "running", "clean", "crashed"


class _Columns:
    """Queued rows, one list per ``events`` column (in ``EVENT_COLUMNS`` order)."""

    __slots__ = EVENT_COLUMNS

    def __init__(self, columns: Sequence[list[Any]] | None = None) -> None:
        cols = columns if columns is not None else [[] for _ in EVENT_COLUMNS]
        self.seq: list[int] = cols[0]
        self.event_id: list[str] = cols[1]
        self.ts_event: list[int] = cols[2]
        self.ts_init: list[int] = cols[3]
        self.topic: list[str] = cols[4]
        self.type: list[str] = cols[5]
        self.schema_version: list[int] = cols[6]
        self.critical: list[bool] = cols[7]
        self.payload: list[str] = cols[8]
        self.correlation_id: list[str | None] = cols[9]
        self.causation_id: list[str | None] = cols[10]

    def __len__(self) -> int:
        return len(self.seq)

    def columns(self) -> list[list[Any]]:
        return [getattr(self, name) for name in EVENT_COLUMNS]

    def slice(self, start: int, stop: int) -> _Columns:
        if start == 0 and stop >= len(self):
            return self
        return _Columns([col[start:stop] for col in self.columns()])

    def rows(self) -> list[tuple[Any, ...]]:
        return list(zip(*self.columns(), strict=True))

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> _Columns:
        if not rows:
            return cls()
        return cls([list(col) for col in zip(*rows, strict=True)])


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EventLog:
    """The append-only event log of one engine, in one DuckDB file (a ``Journal``).

    ``batch_size``: non-critical rows that trigger a write. ``flush_interval_s``: the longest a
    non-critical row waits to be written. ``dedup_window``: how many recent non-critical
    event ids are remembered for idempotent appends (critical ids are all remembered; an
    older non-critical duplicate is stored again).
    ``max_pending``: queued rows above which ``append`` blocks (and raises while unhealthy).
    ``close_timeout_s``: how long ``close`` keeps retrying a failing write before giving up.
    ``memory_limit``: DuckDB's ``memory_limit`` for this connection (e.g. ``"256MB"``; caps its
    buffer cache, hence the process's resident memory, as the file grows); ``""`` keeps
    DuckDB's default (80 % of RAM). A value DuckDB refuses fails ``open`` with a
    PersistenceError naming it.

    Thread-safe: any thread may append, wait, read or snapshot. Use ``open()``/``close()`` or
    ``with EventLog(path) as log:``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 10_000,
        flush_interval_s: float = 0.05,
        dedup_window: int = 200_000,
        max_pending: int = 1_000_000,
        max_commit_rows: int = 100_000,
        close_timeout_s: float = 10.0,
        group_commit_wait_s: float = 0.001,
        memory_limit: str = "",
    ) -> None:
        if batch_size < 1:
            raise PersistenceError(f"batch_size must be >= 1, got {batch_size!r}")
        if flush_interval_s <= 0:
            raise PersistenceError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        if dedup_window < 0:
            raise PersistenceError(f"dedup_window must be >= 0, got {dedup_window!r}")
        self.path = os.fspath(path)
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._window = dedup_window
        self._max_pending = max(max_pending, batch_size)
        self._max_commit_rows = max(max_commit_rows, 1)
        self._close_timeout = close_timeout_s
        self._gather = group_commit_wait_s
        self._memory_limit = memory_limit.strip()
        self._codec = EventCodec()
        self._codecs = self._codec.codecs
        self._key = os.path.realpath(self.path)

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the writer waits here
        self._durable = threading.Condition(self._lock)  # waiters on a commit wait here
        self._con_lock = threading.Lock()  # guards (re)connecting and cursor creation
        self._snapshot_lock = threading.Lock()
        self._stop_retrying = threading.Event()

        self._root: duckdb.DuckDBPyConnection | None = None
        self._writer: threading.Thread | None = None
        self._pending: list[tuple[Any, ...]] = []  # queued rows; the writer makes columns
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
        self._critical_ids: set[str] = set()
        self._recent_ids: set[str] = set()
        self._recent_order: collections.deque[str] = collections.deque()
        self._journal = CriticalJournal(self.path + ".critical")
        #: Critical events restored from the critical journal at the last open.
        self.repaired = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> EventLog:
        """Open (creating if needed) the file, load seq and dedup ids, start the writer."""
        if self._open:
            return self
        key = self._key = os.path.realpath(self.path)
        with _OPEN_PATHS_LOCK:
            if key in _OPEN_PATHS:
                raise PersistenceError(
                    f"event log file {self.path!r} is already open in this process"
                )
            _OPEN_PATHS.add(key)
        try:
            self._root = self._connect_or_set_wal_aside()
            cur = self._root.cursor()
            try:
                for ddl in _DDL:
                    cur.execute(ddl)
                self._drop_event_id_index(cur)
                self.repaired = self._restore_from_journal(cur)
                cur.execute("CHECKPOINT")
                self._journal.reset()  # the checkpoint put all it held in the main file
                self._journal.open()
                self._load(cur)
            finally:
                cur.close()
        except BaseException:
            self._journal.close()
            self._disconnect()
            with _OPEN_PATHS_LOCK:
                _OPEN_PATHS.discard(key)
            raise
        self._closing = False
        self._open = True
        self._stop_retrying.clear()
        self._writer = threading.Thread(
            target=self._run_writer, name="event-log-writer", daemon=True
        )
        self._writer.start()
        return self

    def close(self) -> None:
        """Write and commit everything queued, stop the writer and release the file.

        Raises PersistenceError if queued events could not be written within
        ``close_timeout_s`` (they are lost; the file holds a consistent prefix).
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
                writer.join()
        with self._lock:
            unwritten = self._seq - self._committed
            self._open = False
            self._durable.notify_all()
        self._disconnect()
        self._journal.close()
        with _OPEN_PATHS_LOCK:
            _OPEN_PATHS.discard(self._key)
        if unwritten:
            raise PersistenceError(
                f"event log {self.path!r} closed with {unwritten} event(s) not written "
                f"(last committed seq {self._committed}): {self._error}"
            )

    def __enter__(self) -> EventLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # memory_limit goes in at connect so that it also bounds the WAL replay of the open.
        config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": self._memory_limit} if self._memory_limit else {}
        )
        try:
            return duckdb.connect(self.path, config=config)
        except duckdb.Error as exc:
            message = str(exc)
            if config and isinstance(exc, duckdb.ParserException) and "memory" in message.lower():
                raise PersistenceError(
                    f"event log {self.path!r}: DuckDB refused memory_limit "
                    f"{self._memory_limit!r} (expected e.g. '256MB' or '1GiB'): {message}"
                ) from exc
            if "lock" in message.lower():
                pid = re.search(r"PID (\d+)", message)
                holder = f" (PID {pid.group(1)})" if pid else ""
                raise PersistenceError(
                    f"event log file {self.path!r} is held by another process{holder}; "
                    "only one engine may open it at a time"
                ) from None
            raise PersistenceError(f"cannot open event log file {self.path!r}: {message}") from exc

    def _connect_or_set_wal_aside(self) -> duckdb.DuckDBPyConnection:
        """Connect; if DuckDB refuses a damaged write-ahead log, move the WAL aside (kept for
        inspection) and open the last checkpoint: the critical journal restores the rest."""
        try:
            return self._connect()
        except PersistenceError as exc:
            wal = Path(self.path + ".wal")
            if "WAL" not in str(exc) or not wal.exists():
                raise
            aside = wal.with_name(f"{wal.name}.corrupt-{time.time_ns()}")
            os.replace(wal, aside)
            log.error(
                "event log %s: DuckDB refused its write-ahead log (%s); moved it to %s and "
                "opening the last checkpoint; critical events come back from the journal",
                self.path,
                exc,
                aside,
            )
            return self._connect()

    def _drop_event_id_index(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Rebuild an events table that still has UNIQUE(event_id) (a file written before it
        was dropped) without it, keeping every row and seq; a no-op for a new-style file.

        One DuckDB transaction (copy, drop the old table, rename, check the row count): a crash
        or an error before COMMIT leaves the old table as it was, and the next open migrates
        again; after COMMIT the WAL holds the whole change. A CHECKPOINT then writes it to the
        main file and frees the old index. Raises PersistenceError (file unchanged) on failure,
        e.g. if a ``memory_limit`` is too small for the old index: open once without it.
        """
        row = cur.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database()"
            " AND table_name = 'events' AND constraint_type = 'UNIQUE'"
            " AND list_contains(constraint_column_names, 'event_id')"
        ).fetchall()[0]
        if not row[0]:
            return
        started = time.monotonic()
        try:
            cur.execute("BEGIN TRANSACTION")
            before = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchall()
            for sql in _MIGRATE_EVENTS:
                cur.execute(sql)
            after = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchall()
            if after != before:
                raise PersistenceError(f"rows (count, max seq) {before} became {after}")
            cur.execute("COMMIT")
        except (duckdb.Error, PersistenceError) as exc:
            with suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            raise PersistenceError(
                f"event log {self.path!r}: dropping UNIQUE(event_id) failed, the file is "
                f"unchanged: {exc}"
            ) from exc
        cur.execute("CHECKPOINT")
        log.warning(
            "event log %s: migrated the events table to drop UNIQUE(event_id) (%d rows, "
            "last seq %d) in %.2f s; event ids are deduplicated in memory from now on",
            self.path,
            before[0][0],
            before[0][1],
            time.monotonic() - started,
        )

    def _restore_from_journal(self, cur: duckdb.DuckDBPyConnection) -> int:
        """Insert every journaled critical event the database lacks; returns how many."""
        rows = self._journal.read()
        if not rows:
            return 0
        ids = [r[1] for r in rows]
        present = {
            r[0]
            for r in cur.execute(
                "SELECT event_id FROM events WHERE list_contains(?, event_id)", [ids]
            ).fetchall()
        }
        unique = {r[1]: r for r in rows if r[1] not in present}  # a retry may journal twice
        missing = sorted(unique.values(), key=lambda r: r[0])
        if missing:
            self._insert(cur, _Columns.from_rows([tuple(r) for r in missing]))
            log.error(
                "event log %s: restored %d critical event(s) (seq %d..%d) from the critical "
                "journal that the database had lost; non-critical events of that span may be "
                "missing",
                self.path,
                len(missing),
                missing[0][0],
                missing[-1][0],
            )
        return len(missing)

    def _disconnect(self) -> None:
        with self._con_lock:
            if self._root is not None:
                with suppress(duckdb.Error):
                    self._root.close()
                self._root = None

    def _load(self, cur: duckdb.DuckDBPyConnection) -> None:
        row = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
        self._seq = self._committed = int(row[0]) if row else 0
        ids = cur.execute("SELECT event_id FROM events WHERE critical").fetchall()
        self._critical_ids = {r[0] for r in ids}
        recent = cur.execute(
            "SELECT event_id FROM events WHERE NOT critical ORDER BY seq DESC LIMIT ?",
            [self._window],
        ).fetchall()
        self._recent_order = collections.deque(r[0] for r in reversed(recent))
        self._recent_ids = set(self._recent_order)

    # -- the Journal protocol ----------------------------------------------------------------
    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        """Assign the next seq to ``event``, queue it, and return the event carrying the seq.

        With ``wait`` return only once it is committed (PersistenceError if the write fails).
        Critical events are written at once; others in batches.

        Idempotence: an event whose ``event_id`` is already in the log is not stored again
        and ``None`` is returned (no seq consumed; with ``wait``, after everything appended
        so far is durable). Ids are checked in memory, before a seq is assigned: every critical
        id is remembered for ever (all are loaded at open), non-critical ids only for the last
        ``dedup_window`` non-critical events (loaded at open too). So critical events are
        idempotent for ever and non-critical ones within that window; a non-critical duplicate
        older than the window is appended and stored again under a new seq (the file has no
        index on event_id: DuckDB would keep it in memory, growing without bound).

        A payload that cannot be stored as JSON (NaN, infinity, an unserialisable value)
        raises EventError here, before a seq is assigned.
        """
        codec = self._codecs.get(type(event)) or self._codec.for_class(type(event))
        payload = codec.encode(event)
        event_id = event.event_id
        critical = codec.critical
        with self._lock:
            if not self._open or self._closing:
                raise PersistenceError(f"event log {self.path!r} is not open")
            if event_id in self._critical_ids or event_id in self._recent_ids:
                duplicate_of = self._seq
            else:
                duplicate_of = -1
                while len(self._pending) >= self._max_pending:
                    if self._error is not None:
                        raise PersistenceError(
                            f"event log {self.path!r} is failing and {len(self._pending)} "
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
                # columns, off this (the engine's) thread.
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
                        f"event log {self.path!r} could not commit seq {seq} "
                        f"(last committed {self._committed}): {self._error}"
                    )
                if not self._open:
                    raise PersistenceError(
                        f"event log {self.path!r} closed before seq {seq} was committed"
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
        """Counters for monitoring: seqs, queue length, failures.

        ``dropped_duplicates`` is always 0 here (kept for the same shape as PostgreSQL's): a
        duplicate is refused by ``append`` before it gets a seq, or, a non-critical one older
        than ``dedup_window``, stored again.
        """
        with self._lock:
            return {
                "last_seq": self._seq,
                "committed_seq": self._committed,
                "pending": len(self._pending),
                "healthy": self.healthy,
                "last_error": self._error,
                "write_failures": self._failures,
                "dropped_duplicates": 0,
            }

    # -- the writer thread -------------------------------------------------------------------
    def _run_writer(self) -> None:
        try:
            cur: duckdb.DuckDBPyConnection | None = self._writer_cursor()
            while True:
                with self._lock:
                    while True:
                        if self._pending:
                            if self._urgent or self._closing:
                                break
                            if len(self._pending) >= self._batch_size:
                                break
                            now = time.monotonic()
                            remaining = self._first_pending_at + self._interval - now
                            if self._urgent_rows:
                                # Group commit: the producers the last commit released are
                                # about to append again; give them a moment to share this one.
                                if self._urgent_rows >= self._expect:
                                    break
                                since = max(self._urgent_since, self._committed_at)
                                remaining = min(remaining, since + self._gather - now)
                            if remaining <= 0:
                                break
                            self._wake.wait(remaining)
                        elif self._closing:
                            return
                        else:
                            self._urgent = False
                            self._wake.wait()
                    rows = self._pending
                    self._pending = []
                    self._urgent = False
                    self._urgent_rows = 0
                batch = _Columns.from_rows(rows)
                for start in range(0, len(batch), self._max_commit_rows):
                    cur = self._write(cur, batch.slice(start, start + self._max_commit_rows))
                    if cur is None:
                        return
        except BaseException as exc:  # the writer must report, never vanish silently
            log.exception("event log writer died")
            with self._lock:
                self._error = f"writer thread died: {exc!r}"
                self._durable.notify_all()

    def _writer_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._con_lock:
            if self._root is None:
                self._root = self._connect()
            return self._root.cursor()

    def _write(
        self, cur: duckdb.DuckDBPyConnection | None, batch: _Columns
    ) -> duckdb.DuckDBPyConnection | None:
        """Insert and commit ``batch`` (retrying), then journal its critical rows; return the
        cursor to go on with, or None if close gave up on a failing store."""
        delay = 0.01
        critical = [r for r in batch.rows() if r[7]] if any(batch.critical) else []
        while batch:
            try:
                if cur is None:
                    cur, batch = self._recover(batch)
                    if not batch:
                        break
                self._insert(cur, batch)
                break
            except (duckdb.Error, OSError, pa.ArrowException) as exc:
                self._failed(cur, exc)
                cur = None
            if self._stop_retrying.wait(delay):
                return None
            delay = min(delay * 2, 1.0)
        if critical and not self._journal_rows(critical):
            return None
        last = batch.seq[-1] if batch else None
        with self._lock:
            if last is not None:
                self._committed = max(self._committed, last)
                released = sum(n for s, n in self._wait_seqs.items() if s <= last)
                self._expect = released + self._urgent_rows
                self._committed_at = time.monotonic()
            self._error = None
            self._durable.notify_all()
        return cur

    def _journal_rows(self, rows: list[tuple[Any, ...]]) -> bool:
        """Append committed critical rows to the critical journal, retrying until it works:
        nobody waiting on them is released before (False if close gave up)."""
        delay = 0.01
        while True:
            try:
                self._journal.append(rows)
                return True
            except OSError as exc:
                message = f"critical journal: {type(exc).__name__}: {exc}"
                log.error("event log %s: write failed, will retry: %s", self.path, message)
                with self._lock:
                    self._error = message
                    self._failures += 1
                    self._durable.notify_all()
            if self._stop_retrying.wait(delay):
                return False
            delay = min(delay * 2, 1.0)

    @staticmethod
    def _insert(cur: duckdb.DuckDBPyConnection, batch: _Columns) -> None:
        table = pa.Table.from_arrays(
            [
                pa.array(col, type=field.type)
                for col, field in zip(batch.columns(), _SCHEMA, strict=True)
            ],
            schema=_SCHEMA,
        )
        # In auto-commit mode one statement is one transaction: the batch is committed (one
        # WAL fsync) or rolled back as a whole, with fewer GIL round trips than BEGIN/COMMIT.
        cur.from_arrow(table).insert_into("events")

    def _failed(self, cur: duckdb.DuckDBPyConnection | None, exc: BaseException) -> None:
        """Record a failed write; drop the connection so the retry starts from a fresh one
        (DuckDB invalidates a database after a failed commit)."""
        message = f"{type(exc).__name__}: {exc}"
        log.error("event log %s: write failed, will retry: %s", self.path, message)
        with self._lock:
            self._error = message
            self._failures += 1
            self._durable.notify_all()
        if cur is not None:
            with suppress(duckdb.Error):
                cur.close()
        self._disconnect()

    def _recover(self, batch: _Columns) -> tuple[duckdb.DuckDBPyConnection, _Columns]:
        """Reconnect after a failure and skip rows a failed-looking commit did store (a
        commit covers a prefix of seq, so they are the rows up to the stored max(seq))."""
        cur = self._writer_cursor()
        row = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
        stored = int(row[0]) if row else 0
        with self._lock:
            self._committed = max(self._committed, min(stored, self._seq))
        return cur, batch.slice(bisect.bisect_right(batch.seq, stored), len(batch))

    # -- reads -------------------------------------------------------------------------------
    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._con_lock:
            if self._root is None:
                raise PersistenceError(f"event log {self.path!r} is not open")
            cur = self._root.cursor()
        try:
            yield cur
        except duckdb.Error as exc:
            raise PersistenceError(f"event log {self.path!r}: read failed: {exc}") from exc
        finally:
            cur.close()

    def read(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events with ``since_seq < seq <= until_seq``, in seq order, after flushing.

        ``topic`` is a pattern (``*`` one segment, trailing ``>`` the rest; EventError if
        malformed), ``types`` wire names, ``start_ns <= ts_event < end_ns``. Parameters are
        always bound, never formatted into SQL.
        """
        where, params = build_where(
            EventFilter(since_seq, until_seq, topic, types, start_ns, end_ns)
        )
        sql = f"{_SELECT} WHERE {where} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(_non_negative("limit", limit))
        self.flush()
        with self._reader() as cur:
            rows = cur.execute(sql, params).fetchall()
        return [row_to_event(r) for r in rows]

    def read_df(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Like ``read`` but the raw rows as a DataFrame (``payload`` is JSON text)."""
        where, params = build_where(
            EventFilter(since_seq, until_seq, topic, types, start_ns, end_ns)
        )
        sql = f"{_SELECT} WHERE {where} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(_non_negative("limit", limit))
        self.flush()
        with self._reader() as cur:
            return cur.execute(sql, params).df()

    def iter_batches(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        batch_size: int = 50_000,
    ) -> Iterator[list[Event]]:
        """Yield matching events in seq order, ``batch_size`` at a time, for big replays.

        Pages by seq, each page fetched fully; the log is flushed once, at the start.
        """
        size = _non_negative("batch_size", batch_size) or 1
        self.flush()
        last = since_seq
        while True:
            where, params = build_where(
                EventFilter(last, until_seq, topic, types, start_ns, end_ns)
            )
            with self._reader() as cur:
                rows = cur.execute(
                    f"{_SELECT} WHERE {where} ORDER BY seq LIMIT ?", [*params, size]
                ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [row_to_event(r) for r in rows]
            if len(rows) < size:
                return

    def count(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> int:
        """How many stored events match (after flushing)."""
        where, params = build_where(
            EventFilter(since_seq, until_seq, topic, types, start_ns, end_ns)
        )
        self.flush()
        with self._reader() as cur:
            row = cur.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchall()[0]
        return int(row[0]) if row else 0

    # -- snapshots ---------------------------------------------------------------------------
    def save_snapshot(
        self,
        seq: int,
        schema_version: int,
        state: dict[str, Any],
        *,
        created_at_ns: int | None = None,
    ) -> int:
        """Store ``state`` as covering every event up to ``seq``; return the snapshot id.

        Flushes first: a snapshot may only cover committed events (PersistenceError if ``seq``
        is beyond them). The state is stored as JSON with its sha256 checksum.
        """
        committed = self.flush()
        if seq > committed or seq < 0:
            raise PersistenceError(
                f"snapshot seq {seq} is not covered by the log (last committed {committed})"
            )
        try:
            text = dumps(state, "snapshot state")
        except EventError as exc:
            raise PersistenceError(str(exc)) from exc
        created = time.time_ns() if created_at_ns is None else created_at_ns
        with self._snapshot_lock, self._reader() as cur:
            row = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM snapshots").fetchall()[0]
            snapshot_id = int(row[0]) if row else 1
            cur.execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                [snapshot_id, seq, created, schema_version, text, _checksum(text)],
            )
        return snapshot_id

    def iter_snapshots(self, max_seq: int | None = None) -> Iterator[Snapshot | SkippedSnapshot]:
        """Snapshots newest first (by seq, then id); invalid ones come as SkippedSnapshot.

        A snapshot is invalid if its checksum fails, its JSON does not decode to an object, or
        it covers seqs beyond the stored events.
        """
        with self._reader() as cur:
            params: list[Any] = []
            sql = "SELECT id, seq FROM snapshots"
            if max_seq is not None:
                sql += " WHERE seq <= ?"
                params.append(max_seq)
            heads = cur.execute(sql + " ORDER BY seq DESC, id DESC", params).fetchall()
            top = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
        stored_max = int(top[0]) if top else 0
        for snapshot_id, seq in heads:
            if seq > stored_max:
                yield SkippedSnapshot(
                    snapshot_id, seq, f"covers seq {seq} beyond the last stored seq {stored_max}"
                )
                continue
            with self._reader() as cur:
                rows = cur.execute(
                    "SELECT created_at, schema_version, state, checksum FROM snapshots "
                    "WHERE id = ?",
                    [snapshot_id],
                ).fetchall()
            if not rows:
                continue
            created_at, version, text, checksum = rows[0]
            if _checksum(text) != checksum:
                yield SkippedSnapshot(snapshot_id, seq, "checksum mismatch")
                continue
            try:
                state = json.loads(text)
            except ValueError as exc:
                yield SkippedSnapshot(snapshot_id, seq, f"state does not decode: {exc}")
                continue
            if not isinstance(state, dict):
                yield SkippedSnapshot(snapshot_id, seq, "state is not a JSON object")
                continue
            yield Snapshot(snapshot_id, seq, created_at, version, state, checksum)

    def latest_snapshot(self, max_seq: int | None = None) -> SnapshotLookup:
        """The newest valid snapshot with ``seq <= max_seq`` and the newer ones skipped."""
        skipped: list[SkippedSnapshot] = []
        for item in self.iter_snapshots(max_seq):
            if isinstance(item, SkippedSnapshot):
                log.warning("event log %s: skipping snapshot %s", self.path, item)
                skipped.append(item)
                continue
            return SnapshotLookup(item, tuple(skipped))
        return SnapshotLookup(None, tuple(skipped))

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, config_hash: str, *, started_at_ns: int | None = None) -> str:
        """Record the start of an engine run and return its id.

        Any earlier run still marked ``running`` did not end cleanly: it becomes ``crashed``.
        """
        run_id = uuid.uuid4().hex
        started = time.time_ns() if started_at_ns is None else started_at_ns
        with self._reader() as cur:
            cur.execute("BEGIN TRANSACTION")
            cur.execute("UPDATE runs SET how = ? WHERE how = ?", [CRASHED, RUNNING])
            cur.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?)",
                [run_id, started, RUNNING, config_hash, os.getpid()],
            )
            cur.execute("COMMIT")
        return run_id

    def end_run(self, run_id: str, how: str = CLEAN, *, ended_at_ns: int | None = None) -> None:
        """Record how run ``run_id`` ended (e.g. ``clean``, ``halted``, ``crashed``)."""
        ended = time.time_ns() if ended_at_ns is None else ended_at_ns
        with self._reader() as cur:
            row = cur.execute(
                "UPDATE runs SET how = ?, ended_at = ? WHERE run_id = ? RETURNING run_id",
                [how, ended, run_id],
            ).fetchall()
        if not row:
            raise PersistenceError(f"run_id {run_id!r} is not a recorded run")

    def runs(self) -> list[RunRecord]:
        """Every recorded run, oldest first."""
        with self._reader() as cur:
            rows = cur.execute(
                "SELECT run_id, started_at, ended_at, how, config_hash, pid FROM runs "
                "ORDER BY started_at, run_id"
            ).fetchall()
        return [RunRecord(*r) for r in rows]


def _non_negative(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PersistenceError(f"{name} must be a non-negative integer, got {value!r}")
    return value


__all__: Sequence[str] = ("CLEAN", "CRASHED", "RUNNING", "EventLog")
