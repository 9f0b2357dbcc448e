"""The PostgreSQL event log: one engine's stream in a database that several nodes share.

``PostgresEventLog`` implements :class:`persistence.recorder.Recorder` with the DuckDB log's
semantics, from the same shared machinery (:mod:`persistence.group_commit`): seq assigned on
append in the caller's thread, one writer thread group-committing the queue (critical and
waited-for rows at once, others in batches written with COPY), idempotent event ids, failed
writes retried with backoff while ``healthy`` is False and every waiter gets PersistenceError
(never a false acknowledgement). ``synchronous_commit`` makes a commit durable (WAL flushed)
before it is acknowledged.

Across streams, each commit takes a transaction-scoped advisory lock, reads the highest
``gseq`` and numbers its rows after it: ``gseq`` is gapless, follows commit order, and a
commit becomes visible before the next one can take the lock, so a reader never sees gseq
``n + 1`` without ``n``. ``fence(connection)`` runs inside every write transaction before
COMMIT: the lease check that makes a node which lost its stream fail its writes.

Each stream has its own hash chain (:mod:`persistence.chain`): the writer links the rows of a
commit on from the stream's last stored row just before it COPYs them (after dropping late
duplicates, so the chain runs over the rows actually stored).
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import suppress
from typing import Any, Unpack

import psycopg

from persistence.chain import STORED_COLUMNS
from persistence.group_commit import LogOptions
from persistence.pg.connect import ConnectionPool, connect_writer, redact
from persistence.pg.schema import GSEQ_LOCK, migrate
from persistence.pg.stored import Fence, PgStored
from persistence.pg.writer import PgWriter
from streams.errors import PersistenceError

_COPY = f"COPY events (stream, gseq, {', '.join(STORED_COLUMNS)}) FROM STDIN"


class PostgresEventLog(PgWriter, PgStored):
    """The append-only event log of one stream (``stream``, the engine's book) in PostgreSQL.

    ``dsn``: a libpq connection string or URL. ``options`` (``batch_size``,
    ``flush_interval_s``, ``dedup_window``, ``max_pending``, ``max_commit_rows``,
    ``close_timeout_s``, ``group_commit_wait_s``): the group commit's tuning, as
    :class:`~persistence.group_commit.GroupCommitLog` describes. ``fence``: called
    with the connection inside every write transaction before COMMIT; raising (e.g.
    LeaseLostError) fails the write.

    Thread-safe. Use ``open()``/``close()`` or ``with PostgresEventLog(dsn) as log:``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        stream: str = "default",
        fence: Fence | None = None,
        **options: Unpack[LogOptions],
    ) -> None:
        if not isinstance(stream, str) or not stream or len(stream) > 200:
            raise PersistenceError(f"stream must be a non-empty name, got {stream!r}")
        #: Where the log lives, for messages: the DSN without password, and the stream.
        path = f"{redact(dsn)}#{stream}"
        super().__init__(path, f"event log {path}", f"event log {path}", **options)
        self.dsn = dsn
        self.stream = stream
        self._fence = fence
        self._copy_sql = _COPY
        self._pool = ConnectionPool(dsn, f"event log {self.path}")
        self._con = None

    # -- connecting (GroupCommitLog's hooks) -------------------------------------------------
    def _open_key(self) -> Hashable:
        return (self.path, self.stream)  # one writer per (database, stream) per process

    def _open_store(self) -> None:
        """Connect, apply missing migrations, load seq and dedup ids."""
        try:
            self._con = connect_writer(self.dsn)
        except psycopg.Error as exc:
            raise PersistenceError(f"cannot open event log {self.path}: {exc}") from exc
        migrate(self._con)
        try:
            self._load(self._con)
        except psycopg.Error as exc:
            raise PersistenceError(f"cannot load event log {self.path}: {exc}") from exc
        self._pool.open()
        self._error = None

    def _abort_open(self) -> None:
        self._disconnect()

    def _release_store(self) -> None:
        self._disconnect()
        self._pool.close()

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
            last = int(row[0]) if row else 0
            head = con.execute(
                "SELECT chain_hash FROM events WHERE stream = %s AND seq = %s", [self.stream, last]
            ).fetchone()
        self._loaded(
            last,
            (r[0] for r in ids),
            (r[0] for r in recent),
            self._chain_head_of(last, head[0] if head else None),
        )

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: the stream, seqs, queue length, failures, dropped
        duplicates."""
        return {"stream": self.stream, **super().stats()}
