"""The DuckDB event log: the engine's durable, totally ordered record of events.

One DuckDB file per engine. ``EventLog`` implements :class:`persistence.recorder.Recorder`
(hence :class:`state.journal.Journal`). What it shares with the PostgreSQL log lives in
:mod:`persistence.group_commit` (seq assignment on append, in-memory idempotence, the one
writer thread and its group commit, retries of failed writes, health), :mod:`persistence.reads`
(filtered reads) and :mod:`persistence.snapshot_store` (checksummed snapshots); its DuckDB
reads, snapshots and runs are :mod:`persistence.duckdb_stored`. Here:

- **Writes.** The writer takes the whole queue and makes it durable by appending it to the
  :class:`~persistence.event_journal.EventJournal` beside the file (one write and one
  ``fdatasync``, ~0.5 ms), then releases its waiters. It moves the journaled rows into DuckDB
  afterwards, at most ``flush_interval_s`` later (sooner for ``batch_size`` rows, a read, a
  snapshot or ``close``), in one insert of many rows: a DuckDB commit of a few rows costs
  2.5-5 ms here, ten times the journal's. A failed journal write, and a failed insert (disk
  full, I/O error: the connection is dropped, since DuckDB invalidates a database after a
  failed commit), are retried on a fresh start; while either fails, waiters get
  PersistenceError and the engine halts trading.
- **Recovery.** At open, rows of the journal past the database's last seq (a crash before
  they were moved in) are put back, then a ``CHECKPOINT`` writes everything into the main
  file and the journal is emptied; it is also emptied, after a checkpoint, whenever it grows
  past ``journal_max_bytes`` while running, and at ``close``. A damaged DuckDB write-ahead
  log is set aside and its commits come back from the journal; a file with the old
  ``UNIQUE(event_id)`` is migrated once (:mod:`persistence.duckdb_repair`).
- **Idempotence.** The file has no index on event_id (only the ``seq`` primary key): DuckDB
  keeps indexes wholly in memory, so one over every event id would grow for ever. A
  non-critical duplicate older than ``dedup_window`` is therefore stored again.
- **Reads** run on their own DuckDB cursors; they first have everything appended before the
  call moved into DuckDB, so a reader sees it.
- **Hash chain.** The writer links each commit's rows into the chain
  (:mod:`persistence.chain`) before journaling them; the journal line carries the hashes and
  DuckDB gets them with the rows (``chain_hash``). A file written before the chain gets it at
  open (:func:`~persistence.duckdb_repair.add_hash_chain`); ``verify_chain`` checks it.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Hashable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar, Unpack

import duckdb
import pyarrow as pa

from persistence import duckdb_file
from persistence.chain import journal_line, link_rows
from persistence.duckdb_repair import MIGRATE_EVENTS as _MIGRATE_EVENTS
from persistence.duckdb_repair import (
    add_hash_chain,
    connect_or_set_wal_aside,
    drop_event_id_index,
    restore_from_journal,
)
from persistence.duckdb_stored import DuckDBStored
from persistence.event_journal import EventJournal
from persistence.group_commit import GroupCommitLog, LogOptions, Row

log = logging.getLogger(__name__)


class EventLog(GroupCommitLog[duckdb.DuckDBPyConnection], DuckDBStored):
    """The append-only event log of one engine, in one DuckDB file (a ``Journal``).

    ``options`` (``batch_size``, ``flush_interval_s``, ``dedup_window``, ``max_pending``,
    ``max_commit_rows``, ``close_timeout_s``, ``group_commit_wait_s``): the group commit's
    tuning, as :class:`~persistence.group_commit.GroupCommitLog` describes (critical ids are
    all remembered; a non-critical duplicate older than ``dedup_window`` is stored again).
    ``journal_max_bytes``: journal size past which a running log checkpoints DuckDB and empties
    it (bounds the journal, hence the work of a restart after a crash).
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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        memory_limit: str = "",
        journal_max_bytes: int = 64 * 2**20,
        **options: Unpack[LogOptions],
    ) -> None:
        where = os.fspath(path)
        super().__init__(where, f"event log {where!r}", f"event log file {where!r}", **options)
        self._memory_limit = memory_limit.strip()
        self._con_lock = threading.Lock()  # guards (re)connecting and cursor creation
        self._snapshot_lock = threading.Lock()
        self._root: duckdb.DuckDBPyConnection | None = None
        self._journal = EventJournal(self.path + ".journal")
        self._journal_max_bytes = journal_max_bytes
        #: The writer's cursor and its appender for small commits (``duckdb_file.insert``).
        self._appender: tuple[duckdb.DuckDBPyConnection, Any] | None = None
        # Journaled rows not yet in DuckDB (the writer thread's own) and their chain hashes,
        # since when, and up to which seq DuckDB holds them (guarded by the lock) and a reader
        # wants them there.
        self._unloaded: list[Row] = []
        self._unloaded_chain: list[bytes] = []
        self._first_unloaded_at = 0.0
        self._loaded_seq = 0
        self._load_wanted = 0
        #: Events put back from the journal at the last open (the database did not hold them).
        self.repaired = 0

    # -- opening and closing the file (GroupCommitLog's hooks) --------------------------------
    def _open_key(self) -> Hashable:
        return os.path.realpath(self.path)

    def _open_store(self) -> None:
        self._root = connect_or_set_wal_aside(self._connect, self.path, log)
        legacy = Path(self.path + ".critical")  # the critical-only journal of earlier versions
        cur = self._root.cursor()
        try:
            for ddl in duckdb_file.DDL:
                cur.execute(ddl)
            drop_event_id_index(cur, self.path, log, _MIGRATE_EVENTS)
            add_hash_chain(cur, self.path, log)
            self.repaired = restore_from_journal(cur, (legacy, self._journal.path), self.path, log)
            cur.execute("CHECKPOINT")
            self._journal.reset()  # the checkpoint put all it held in the main file
            legacy.unlink(missing_ok=True)
            self._journal.open()
            self._load(cur)
        finally:
            cur.close()
        self._unloaded, self._unloaded_chain = [], []
        self._loaded_seq = self._load_wanted = self._committed

    def _release_store(self) -> None:
        if self._root is not None and self._loaded_seq >= self._seq:
            # Everything is in DuckDB: checkpoint it into the main file, and the journal is
            # not needed again (the next open has nothing to put back).
            self._checkpoint(self._root)
        self._abort_open()

    def _abort_open(self) -> None:
        self._disconnect()
        self._journal.close()

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
        last = int(row[0]) if row else 0
        ids = cur.execute("SELECT event_id FROM events WHERE critical").fetchall()
        recent = cur.execute(
            "SELECT event_id FROM events WHERE NOT critical ORDER BY seq DESC LIMIT ?",
            [self._window],
        ).fetchall()
        head = cur.execute("SELECT chain_hash FROM events WHERE seq = ?", [last]).fetchall()
        self._loaded(
            last,
            (r[0] for r in ids),
            (r[0] for r in recent),
            self._chain_head_of(last, head[0][0] if head else None),
        )

    # -- the writer's hooks ------------------------------------------------------------------
    def _writer_handle(self) -> duckdb.DuckDBPyConnection:
        with self._con_lock:
            if self._root is None:
                self._root = self._connect()
            return self._root.cursor()

    def _store(self, handle: duckdb.DuckDBPyConnection, rows: list[Row]) -> None:
        # Chained here, on the writer thread, in seq order; durable once journaled (with the
        # hashes); DuckDB gets the rows in _run_deferred. The head moves only once the
        # journal holds them: a retry chains the same rows from the same head again.
        texts, digests, head = link_rows(self._chain_head, rows)
        self._journal.append_text(journal_line(texts, digests))
        self._chain_head = head
        if not self._unloaded:
            self._first_unloaded_at = time.monotonic()
        self._unloaded.extend(rows)
        self._unloaded_chain.extend(digests)

    def _insert(
        self, handle: duckdb.DuckDBPyConnection, rows: list[Row], chain: list[bytes]
    ) -> None:
        cached = self._appender
        if cached is None or cached[0] is not handle:
            cached = self._appender = (handle, duckdb_file.events_appender(handle))
        duckdb_file.insert(handle, rows, cached[1], chain=chain)

    def _deferred_due(self) -> float | None:
        if not self._unloaded:
            return None
        if self._load_wanted > self._loaded_seq or len(self._unloaded) >= self._batch_size:
            return 0.0
        return self._first_unloaded_at + self._interval

    def _run_deferred(
        self, handle: duckdb.DuckDBPyConnection | None
    ) -> duckdb.DuckDBPyConnection | None:
        """Move the journaled rows into DuckDB when due (retrying until it works), then
        checkpoint and empty the journal if it has grown past ``journal_max_bytes``."""
        with self._lock:
            due = self._deferred_due()
            if due is None or (due > time.monotonic() and not self._closing):
                return handle
        rows, chain = self._unloaded, self._unloaded_chain
        last = rows[-1][0]
        delay = 0.01
        while rows:
            try:
                if handle is None:
                    handle, stored = self._reconnect()
                    skip = bisect.bisect_right([r[0] for r in rows], stored)
                    rows, chain = rows[skip:], chain[skip:]
                step = self._max_commit_rows
                while rows:
                    self._insert(handle, rows[:step], chain[:step])
                    rows, chain = rows[step:], chain[step:]
                break
            except self._write_errors as exc:
                self._failed(handle, exc)
                handle = None
            if self._stop_retrying.wait(delay):
                return None
            delay = min(delay * 2, 1.0)
        self._unloaded, self._unloaded_chain = [], []
        with self._lock:
            self._loaded_seq = max(self._loaded_seq, last)
            self._error = None
            self._durable.notify_all()
        if self._journal.size > self._journal_max_bytes and handle is not None:
            self._checkpoint(handle)
        return handle

    def _checkpoint(self, handle: duckdb.DuckDBPyConnection) -> None:
        """Write DuckDB's WAL into its main file, then empty the journal (all it holds is in
        DuckDB now). A checkpoint DuckDB refuses (a read is running) is tried again later."""
        try:
            handle.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.info("event log %s: checkpoint put off: %s", self.path, exc)
            return
        try:
            self._journal.reset()
        except OSError as exc:
            log.warning("event log %s: could not empty the journal: %s", self.path, exc)

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

    # -- reads see what DuckDB holds: have the writer move every journaled row in first ------
    def flush(self) -> int:
        """Commit everything appended so far, have DuckDB hold it, and return the last seq.

        Raises PersistenceError if writes are failing or the log closes first."""
        target = super().flush()
        self._wait_stored(target)
        return target

    def _flush_for(self, until_seq: int | None) -> None:
        if until_seq is None or until_seq > self.committed_seq:
            self.flush()
        elif until_seq > self._loaded_seq:
            self._wait_stored(until_seq)  # committed already: only have DuckDB hold it

    def _wait_stored(self, seq: int) -> None:
        """Have the writer move the journaled rows up to ``seq`` into DuckDB, and wait."""
        with self._lock:
            if self._loaded_seq >= seq:
                return
            self._load_wanted = max(self._load_wanted, seq)
            self._wake.notify()
            while self._loaded_seq < seq:
                self._raise_if_failing(seq, "store", "stored", f"stored up to {self._loaded_seq}")
                self._durable.wait()

    def stats(self) -> dict[str, Any]:
        """``GroupCommitLog.stats`` plus ``stored_seq`` (the last seq DuckDB holds; the rest
        up to ``committed_seq`` is durable in the journal) and ``journal_bytes``."""
        stats = super().stats()
        stats["stored_seq"] = self._loaded_seq
        stats["journal_bytes"] = self._journal.size
        return stats


__all__: Sequence[str] = ("EventLog",)
