"""The writer of the PostgreSQL event log: COPY, gseq, fence and the duplicate fallback.

The loop, its group commit and the retries with backoff are the shared ones
(:class:`persistence.group_commit.GroupCommitLog`); this is the store they write to. Each
transaction:

1. takes the gseq advisory lock (held until COMMIT, so commits are serialised across nodes),
2. reads the highest gseq (a fresh statement snapshot: it sees the previous holder's commit),
3. COPYs the rows numbered after it, each with its chain hash (linked on from the stream's
   head), 4. calls the fence, 5. COMMITs (WAL flushed); the head moves only then.

A failure rolls back and drops the connection; the reconnect waits for the gseq lock (so a
commit of the old connection still running on the server has ended) and reports the stored
max seq, so rows a commit that looked failed did store are skipped. A UNIQUE violation on
event_id (a non-critical duplicate older than the dedup window) drops the duplicates and
commits the rest at once.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import ClassVar

import psycopg

from persistence.chain import link_rows
from persistence.group_commit import GroupCommitLog, Row
from persistence.pg.connect import connect_writer
from persistence.pg.schema import GSEQ_LOCK
from persistence.pg.stored import Fence
from streams.errors import SeamlessError

log = logging.getLogger(__name__)

__all__ = ["PgWriter", "Row"]


class PgWriter(GroupCommitLog[psycopg.Connection]):
    """The store half of :class:`~persistence.pg.log.PostgresEventLog`: the group-commit
    hooks that write to PostgreSQL."""

    _logger: ClassVar[logging.Logger] = log
    _writer_name: ClassVar[str] = "pg-log-writer"
    _stop_join_s: ClassVar[float | None] = 30.0
    _write_errors: ClassVar[tuple[type[BaseException], ...]] = (
        psycopg.Error,
        SeamlessError,  # fence errors included
        OSError,
    )

    dsn: str
    stream: str
    _copy_sql: str
    _fence: Fence | None
    _con: psycopg.Connection | None  # the writer's connection

    @staticmethod
    def _error_text(exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}".strip()

    def _writer_handle(self) -> psycopg.Connection | None:
        return self._con

    def _store(self, handle: psycopg.Connection, rows: list[Row]) -> None:
        """One transaction: gseq lock, COPY, fence, COMMIT (rolled back on any error)."""
        _, digests, head = link_rows(self._chain_head, rows)
        try:
            with handle.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [GSEQ_LOCK])
                top = cur.execute("SELECT coalesce(max(gseq), 0) FROM events").fetchone()
                gseq = int(top[0]) if top else 0
                stream = self.stream
                with cur.copy(self._copy_sql) as copy:
                    for row, digest in zip(rows, digests, strict=True):
                        gseq += 1
                        copy.write_row((stream, gseq, *row, digest))
                if self._fence is not None:
                    self._fence(handle)
            handle.commit()
            self._chain_head = head
        except BaseException:
            with suppress(psycopg.Error):
                handle.rollback()
            raise

    def _salvage(
        self, handle: psycopg.Connection | None, rows: list[Row], exc: BaseException
    ) -> list[Row] | None:
        # Not fewer rows on a UNIQUE violation: a seq clash, another writer on this stream.
        if handle is None or not isinstance(exc, psycopg.errors.UniqueViolation):
            return None
        return self._without_duplicates(handle, rows)

    def _drop(self, handle: psycopg.Connection | None) -> None:
        if handle is not None:
            with suppress(psycopg.Error):
                handle.close()
        if handle is self._con:
            self._con = None

    def _reconnect(self) -> tuple[psycopg.Connection, int]:
        con = self._con = connect_writer(self.dsn)
        # Our previous connection's COMMIT may still be running on the server (it holds the
        # gseq lock until it ends): wait for it before reading what is stored.
        con.execute("SELECT pg_advisory_xact_lock(%s)", [GSEQ_LOCK])
        top = con.execute(
            "SELECT seq, chain_hash FROM events WHERE stream = %s ORDER BY seq DESC LIMIT 1",
            [self.stream],
        ).fetchone()
        con.commit()
        stored = int(top[0]) if top else 0
        # A commit that looked failed may have stored its rows: chain on from what is stored.
        self._chain_head = self._chain_head_of(stored, top[1] if top else None)
        return con, stored

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
