"""The DuckDB event log: the engine's durable, totally ordered record of events.

One DuckDB file per engine. ``EventLog`` implements :class:`persistence.recorder.Recorder`
(hence :class:`state.journal.Journal`). What it shares with the PostgreSQL log lives in
:mod:`persistence.group_commit` (seq assignment on append, in-memory idempotence, the one
writer thread and its group commit, retries of failed writes, health), :mod:`persistence.reads`
(filtered reads) and :mod:`persistence.snapshot_store` (checksummed snapshots). Here:

- **Writes.** The writer takes the whole queue, inserts it as one Arrow batch and commits it in
  one transaction (one WAL fsync, about 1 ms); see :mod:`persistence.duckdb_file`. A failed
  write (disk full, I/O error) drops the connection (DuckDB invalidates a database after a
  failed commit) and is retried on a fresh one.
- **Idempotence.** The file has no index on event_id (only the ``seq`` primary key): DuckDB
  keeps indexes wholly in memory, so one over every event id would grow for ever. A
  non-critical duplicate older than ``dedup_window`` is therefore stored again.
- **Critical journal.** Every committed critical row is also appended to a
  :class:`~persistence.critical_journal.CriticalJournal` beside the file (fsynced before any
  waiter is released); at open, a damaged WAL is set aside, critical events the database lost
  come back from the journal, and a file with the old ``UNIQUE(event_id)`` is migrated once
  (:mod:`persistence.duckdb_repair`).
- **Reads** run on their own DuckDB cursors, so they never wait for the writer; they flush
  first, so a reader sees everything appended before the call.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

import duckdb
import pandas as pd
import pyarrow as pa

from persistence import duckdb_file
from persistence.critical_journal import CriticalJournal
from persistence.duckdb_repair import MIGRATE_EVENTS as _MIGRATE_EVENTS
from persistence.duckdb_repair import (
    connect_or_set_wal_aside,
    drop_event_id_index,
    restore_from_journal,
)
from persistence.group_commit import GroupCommitLog, Row
from persistence.queries import DUCKDB
from persistence.reads import LogReads
from persistence.records import CLEAN, CRASHED, RUNNING, RunRecord
from persistence.snapshot_store import SnapshotStore
from streams.errors import PersistenceError

log = logging.getLogger(__name__)


class EventLog(GroupCommitLog[duckdb.DuckDBPyConnection], LogReads, SnapshotStore):
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

    _logger: ClassVar[logging.Logger] = log
    _writer_name: ClassVar[str] = "event-log-writer"
    _write_errors: ClassVar[tuple[type[BaseException], ...]] = (
        duckdb.Error,
        OSError,
        pa.ArrowException,
    )
    _dialect = DUCKDB
    _select_sql = duckdb_file.SELECT

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
        where = os.fspath(path)
        super().__init__(
            where,
            f"event log {where!r}",
            f"event log file {where!r}",
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            dedup_window=dedup_window,
            max_pending=max_pending,
            max_commit_rows=max_commit_rows,
            close_timeout_s=close_timeout_s,
            group_commit_wait_s=group_commit_wait_s,
        )
        self._memory_limit = memory_limit.strip()
        self._con_lock = threading.Lock()  # guards (re)connecting and cursor creation
        self._snapshot_lock = threading.Lock()
        self._root: duckdb.DuckDBPyConnection | None = None
        self._journal = CriticalJournal(self.path + ".critical")
        #: The writer's cursor and its appender for small commits (``duckdb_file.insert``).
        self._appender: tuple[duckdb.DuckDBPyConnection, Any] | None = None
        #: Critical events restored from the critical journal at the last open.
        self.repaired = 0

    # -- opening and closing the file (GroupCommitLog's hooks) --------------------------------
    def _open_key(self) -> Hashable:
        return os.path.realpath(self.path)

    def _open_store(self) -> None:
        self._root = connect_or_set_wal_aside(self._connect, self.path, log)
        cur = self._root.cursor()
        try:
            for ddl in duckdb_file.DDL:
                cur.execute(ddl)
            drop_event_id_index(cur, self.path, log, _MIGRATE_EVENTS)
            self.repaired = restore_from_journal(cur, self._journal, self.path, log)
            cur.execute("CHECKPOINT")
            self._journal.reset()  # the checkpoint put all it held in the main file
            self._journal.open()
            self._load(cur)
        finally:
            cur.close()

    def _release_store(self) -> None:
        self._disconnect()
        self._journal.close()

    _abort_open = _release_store

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb_file.connect(self.path, self._memory_limit)

    def _disconnect(self) -> None:
        self._appender = None
        with self._con_lock:
            if self._root is not None:
                with suppress(duckdb.Error):
                    self._root.close()
                self._root = None

    def _load(self, cur: duckdb.DuckDBPyConnection) -> None:
        row = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
        ids = cur.execute("SELECT event_id FROM events WHERE critical").fetchall()
        recent = cur.execute(
            "SELECT event_id FROM events WHERE NOT critical ORDER BY seq DESC LIMIT ?",
            [self._window],
        ).fetchall()
        self._loaded(int(row[0]) if row else 0, (r[0] for r in ids), (r[0] for r in recent))

    # -- the writer's hooks ------------------------------------------------------------------
    def _writer_handle(self) -> duckdb.DuckDBPyConnection:
        with self._con_lock:
            if self._root is None:
                self._root = self._connect()
            return self._root.cursor()

    def _store(self, handle: duckdb.DuckDBPyConnection, rows: list[Row]) -> None:
        cached = self._appender
        if cached is None or cached[0] is not handle:
            cached = self._appender = (handle, duckdb_file.events_appender(handle))
        duckdb_file.insert(handle, rows, cached[1])

    def _reconnect(self) -> tuple[duckdb.DuckDBPyConnection, int]:
        cur = self._writer_handle()
        row = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
        return cur, int(row[0]) if row else 0

    def _drop(self, handle: duckdb.DuckDBPyConnection | None) -> None:
        # DuckDB invalidates a database after a failed commit: reconnect from scratch.
        if handle is not None:
            with suppress(duckdb.Error):
                handle.close()
        self._disconnect()

    def _on_committed(self, rows: list[Row]) -> bool:
        """Append the committed critical rows to the critical journal, retrying until it
        works: nobody waiting on them is released before (False if close gave up)."""
        critical = [r for r in rows if r[7]]
        delay = 0.01
        while critical:
            try:
                self._journal.append(critical)
                return True
            except OSError as exc:
                self._record_failure(f"critical journal: {type(exc).__name__}: {exc}")
            if self._stop_retrying.wait(delay):
                return False
            delay = min(delay * 2, 1.0)
        return True

    # -- reads (LogReads' and SnapshotStore's hooks) -----------------------------------------
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

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._reader() as cur:
            return cur.execute(sql, params).fetchall()

    def _frame(self, sql: str, params: list[Any]) -> pd.DataFrame:
        with self._reader() as cur:
            return cur.execute(sql, params).df()

    def _insert_snapshot(
        self, seq: int, created_at: int, schema_version: int, text: str, digest: str
    ) -> int:
        with self._snapshot_lock, self._reader() as cur:
            row = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM snapshots").fetchall()[0]
            snapshot_id = int(row[0]) if row else 1
            cur.execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                [snapshot_id, seq, created_at, schema_version, text, digest],
            )
        return snapshot_id

    def _snapshot_heads(self, max_seq: int | None) -> tuple[list[tuple[int, int]], int]:
        with self._reader() as cur:
            params: list[Any] = []
            sql = "SELECT id, seq FROM snapshots"
            if max_seq is not None:
                sql += " WHERE seq <= ?"
                params.append(max_seq)
            heads = cur.execute(sql + " ORDER BY seq DESC, id DESC", params).fetchall()
            top = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
        return heads, int(top[0]) if top else 0

    def _snapshot_body(self, snapshot_id: int) -> tuple[Any, ...] | None:
        with self._reader() as cur:
            rows = cur.execute(
                "SELECT created_at, schema_version, state, checksum FROM snapshots WHERE id = ?",
                [snapshot_id],
            ).fetchall()
        return rows[0] if rows else None

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


__all__: Sequence[str] = ("CLEAN", "CRASHED", "RUNNING", "EventLog")
