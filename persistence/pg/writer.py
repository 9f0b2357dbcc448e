"""The writer thread of the PostgreSQL event log: group commit, COPY, gseq, fence, retries.

The loop is the DuckDB writer's (see :mod:`persistence.event_log`): it waits until something
urgent (a critical or waited-for row), ``batch_size`` rows or ``flush_interval_s`` calls for a
write, takes the whole queue and commits it in one transaction. Each transaction:

1. takes the gseq advisory lock (held until COMMIT, so commits are serialised across nodes),
2. reads the highest gseq (a fresh statement snapshot: it sees the previous holder's commit),
3. COPYs the rows numbered after it, 4. calls the fence, 5. COMMITs (WAL flushed).

A failure rolls back, drops the connection and retries with backoff after reconnecting; the
reconnect waits for the gseq lock (so a commit of the old connection still running on the
server has ended) and skips rows a commit that looked failed did store (by max seq).
"""

from __future__ import annotations

import bisect
import collections
import logging
import threading
import time
from contextlib import suppress
from typing import Any

import psycopg

from persistence.pg.connect import connect_writer
from persistence.pg.schema import GSEQ_LOCK
from persistence.pg.stored import Fence
from streams.errors import SeamlessError

log = logging.getLogger(__name__)

Row = tuple[Any, ...]  # one queued event in EVENT_COLUMNS order (seq first, event_id second)


class PgWriter:
    """The writer half of :class:`~persistence.pg.log.PostgresEventLog` (a mixin)."""

    dsn: str
    stream: str
    path: str
    _copy_sql: str
    _fence: Fence | None
    _lock: threading.Lock
    _wake: threading.Condition
    _durable: threading.Condition
    _stop_retrying: threading.Event
    _con: psycopg.Connection | None
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
    _dropped_duplicates: int
    _batch_size: int
    _interval: float
    _gather: float
    _max_commit_rows: int

    def _run_writer(self) -> None:
        try:
            con = self._con
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
                for start in range(0, len(rows), self._max_commit_rows):
                    con = self._write(con, rows[start : start + self._max_commit_rows])
                    if con is None:
                        return
        except BaseException as exc:  # the writer must report, never vanish silently
            log.exception("event log %s: writer died", self.path)
            with self._lock:
                self._error = f"writer thread died: {exc!r}"
                self._durable.notify_all()

    def _write(self, con: psycopg.Connection | None, rows: list[Row]) -> psycopg.Connection | None:
        """Commit ``rows`` (retrying until it works); the connection to go on with, or None
        if close gave up on a failing database."""
        delay = 0.01
        while rows:
            try:
                if con is None:
                    con, rows = self._recover(rows)
                    if not rows:
                        break
                self._commit(con, rows)
                break
            except psycopg.errors.UniqueViolation as exc:
                assert con is not None
                try:
                    kept = self._without_duplicates(con, rows)
                except psycopg.Error as inner:
                    self._failed(con, inner)
                    con = None
                else:
                    if len(kept) < len(rows):
                        rows = kept
                        continue
                    self._failed(con, exc)  # a seq clash: another writer on this stream
                    con = None
            except (psycopg.Error, SeamlessError, OSError) as exc:  # fence errors included
                self._failed(con, exc)
                con = None
            if self._stop_retrying.wait(delay):
                return None
            delay = min(delay * 2, 1.0)
        last = rows[-1][0] if rows else None
        with self._lock:
            if last is not None:
                self._committed = max(self._committed, last)
                released = sum(n for s, n in self._wait_seqs.items() if s <= last)
                self._expect = released + self._urgent_rows
                self._committed_at = time.monotonic()
            self._error = None
            self._durable.notify_all()
        return con

    def _commit(self, con: psycopg.Connection, rows: list[Row]) -> None:
        """One transaction: gseq lock, COPY, fence, COMMIT (rolled back on any error)."""
        try:
            with con.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [GSEQ_LOCK])
                top = cur.execute("SELECT coalesce(max(gseq), 0) FROM events").fetchone()
                gseq = int(top[0]) if top else 0
                stream = self.stream
                with cur.copy(self._copy_sql) as copy:
                    for row in rows:
                        gseq += 1
                        copy.write_row((stream, gseq, *row))
                if self._fence is not None:
                    self._fence(con)
            con.commit()
        except BaseException:
            with suppress(psycopg.Error):
                con.rollback()
            raise

    def _failed(self, con: psycopg.Connection | None, exc: BaseException) -> None:
        """Record a failed write and drop the connection (the retry reconnects)."""
        message = f"{type(exc).__name__}: {exc}".strip()
        log.error("event log %s: write failed, will retry: %s", self.path, message)
        with self._lock:
            self._error = message
            self._failures += 1
            self._durable.notify_all()
        if con is not None:
            with suppress(psycopg.Error):
                con.close()
        if con is self._con:
            self._con = None

    def _recover(self, rows: list[Row]) -> tuple[psycopg.Connection, list[Row]]:
        """Reconnect after a failure and skip rows a failed-looking commit did store."""
        con = self._con = connect_writer(self.dsn)
        # Our previous connection's COMMIT may still be running on the server (it holds the
        # gseq lock until it ends): wait for it before reading what is stored.
        con.execute("SELECT pg_advisory_xact_lock(%s)", [GSEQ_LOCK])
        top = con.execute(
            "SELECT coalesce(max(seq), 0) FROM events WHERE stream = %s", [self.stream]
        ).fetchone()
        con.commit()
        stored = int(top[0]) if top else 0
        with self._lock:
            self._committed = max(self._committed, min(stored, self._seq))
        return con, rows[bisect.bisect_right([r[0] for r in rows], stored) :]

    def _without_duplicates(self, con: psycopg.Connection, rows: list[Row]) -> list[Row]:
        """The rows whose event_id is neither stored in this stream nor earlier in ``rows``."""
        found = con.execute(
            "SELECT event_id FROM events WHERE stream = %s AND event_id = ANY(%s::text[])",
            [self.stream, [r[1] for r in rows]],
        ).fetchall()
        con.commit()
        stored = {r[0] for r in found}
        kept: list[Row] = []
        seen: set[str] = set()
        for r in rows:
            if r[1] in stored or r[1] in seen:
                continue
            seen.add(r[1])
            kept.append(r)
        dropped = len(rows) - len(kept)
        if dropped:
            log.warning(
                "event log %s: dropped %d duplicate event(s) older than the dedup window; "
                "their seqs stay unused",
                self.path,
                dropped,
            )
            with self._lock:
                self._dropped_duplicates += dropped
        return kept
