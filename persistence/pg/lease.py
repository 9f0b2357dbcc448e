"""The ``leases`` table of a shared PostgreSQL log: the SQL behind a node's lease on its book.

One row per book in ``leases(book, owner, epoch, expires_at)``. Every comparison with
``expires_at`` uses the *database's* clock (``clock_timestamp()``), never a node's, so nodes
with skewed clocks still agree on who holds a book. This module only reads and writes rows;
the policy (when to renew, the local deadline, what losing the lease means) is
:class:`engine.lease.BookLease`'s.

- :meth:`PostgresLeaseStore.acquire` is one statement: insert the row, or take it over when it
  has expired, bumping ``epoch`` (a fencing token: each owner of a book has its own epoch).
- :func:`lock_for_commit` runs inside a write transaction of the event log, just before
  COMMIT: it re-reads the owner's row ``FOR SHARE``, so a takeover (an UPDATE of the row) waits
  for that commit.
- :func:`books_and_leases` lists every book of the log with its lease, for a cluster view.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from streams.errors import PersistenceError

#: The lease table (created on first use; every node may run this).
DDL = """
CREATE TABLE IF NOT EXISTS leases (
    book text PRIMARY KEY,
    owner text NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
)
"""
#: Serialises concurrent CREATE TABLE IF NOT EXISTS (which can race on the catalog otherwise).
_DDL_LOCK_KEY = 0x5EA1_1E45

#: A connection of the event log's writer, inside an open write transaction.
WriteConnection = psycopg.Connection[Any]

_ACQUIRE = """
INSERT INTO leases AS l (book, owner, epoch, expires_at)
VALUES (%(book)s, %(owner)s, 1, clock_timestamp() + %(ttl)s * interval '1 second')
ON CONFLICT (book) DO UPDATE
    SET owner = EXCLUDED.owner,
        epoch = l.epoch + 1,
        expires_at = clock_timestamp() + %(ttl)s * interval '1 second'
    WHERE l.expires_at < clock_timestamp()
RETURNING epoch
"""
_RENEW = """
UPDATE leases SET expires_at = clock_timestamp() + %(ttl)s * interval '1 second'
WHERE book = %(book)s AND owner = %(owner)s AND epoch = %(epoch)s
  AND expires_at > clock_timestamp()
RETURNING epoch
"""
_RELEASE = """
UPDATE leases SET expires_at = clock_timestamp()
WHERE book = %(book)s AND owner = %(owner)s AND epoch = %(epoch)s
"""
_FENCE = """
SELECT 1 FROM leases
WHERE book = %(book)s AND owner = %(owner)s AND epoch = %(epoch)s
  AND expires_at > clock_timestamp()
FOR SHARE
"""
_HOLDER = """
SELECT owner, epoch, expires_at, expires_at > clock_timestamp() FROM leases WHERE book = %s
"""
_HAS_LEASES = "SELECT to_regclass('leases') IS NOT NULL"
_BOOKS = """
SELECT stream FROM (SELECT DISTINCT stream FROM events) AS s
UNION SELECT book FROM leases ORDER BY 1
"""
_BOOKS_NO_LEASES = "SELECT DISTINCT stream FROM events ORDER BY 1"
_LEASES = """
SELECT book, owner, epoch, extract(epoch FROM expires_at - clock_timestamp())
FROM leases
"""


@dataclasses.dataclass(frozen=True)
class LeaseHolder:
    """Who holds (or last held) a book's lease, as the database sees it now."""

    owner: str
    epoch: int
    expires_at: dt.datetime
    valid: bool

    def describe(self) -> str:
        """E.g. ``node 'n1' (epoch 3, until 2026-11-25T14:00:02+00:00)``."""
        state = "until" if self.valid else "expired at"
        return f"node {self.owner!r} (epoch {self.epoch}, {state} {self.expires_at.isoformat()})"


@dataclasses.dataclass(frozen=True)
class LeaseLeft:
    """A book's lease in a cluster listing: its owner, epoch and seconds left (< 0: expired)."""

    owner: str
    epoch: int
    left_s: float


class PostgresLeaseStore:
    """The lease rows of one database, through one autocommit connection of its own.

    What: acquire / renew / release / read a book's row, each one short statement. The
    connection is opened (and the table created) on first use, and dropped after a database
    error so the next call reconnects. Calls from several threads are serialised on it.

    Why the timeouts: a renewal must fail well before the node's local deadline rather than
    wait on a locked row or a stuck server, so the caller bounds the connect, the row lock
    and the statement.

    Raises :class:`~streams.errors.PersistenceError` naming the book when the database fails.
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: int,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
    ) -> None:
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # the one connection

    def acquire(self, book: str, owner: str, ttl_s: float) -> int | None:
        """Take ``book`` for ``owner`` for ``ttl_s`` if it is free or expired: the new epoch.

        None if a live holder has it, or is committing under it right now (the row lock or
        the statement timed out: try again later).
        """
        params = {"book": book, "owner": owner, "ttl": ttl_s}
        try:
            with self._lock:
                row = self._connection().execute(_ACQUIRE, params).fetchone()
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
            return None
        except psycopg.Error as exc:
            self.close()
            raise PersistenceError(f"cannot acquire the lease on book {book!r}: {exc}") from exc
        return None if row is None else int(row[0])

    def renew(self, book: str, owner: str, epoch: int, ttl_s: float) -> bool:
        """Extend ``owner``'s unexpired lease of ``epoch`` by ``ttl_s``; False if not theirs."""
        params = {"book": book, "owner": owner, "epoch": epoch, "ttl": ttl_s}
        try:
            with self._lock:
                row = self._connection().execute(_RENEW, params).fetchone()
        except psycopg.Error as exc:
            self.close()
            raise PersistenceError(f"cannot renew the lease on book {book!r}: {exc}") from exc
        return row is not None

    def release(self, book: str, owner: str, epoch: int) -> None:
        """Expire ``owner``'s lease of ``epoch`` now, so another node may take ``book`` at once."""
        params = {"book": book, "owner": owner, "epoch": epoch}
        try:
            with self._lock:
                self._connection().execute(_RELEASE, params)
        except psycopg.Error as exc:
            raise PersistenceError(f"cannot release the lease on book {book!r}: {exc}") from exc

    def holder(self, book: str) -> LeaseHolder | None:
        """``book``'s current row (None if nobody ever took it)."""
        try:
            with self._lock:
                row = self._connection().execute(_HOLDER, (book,)).fetchone()
        except psycopg.Error as exc:
            self.close()
            raise PersistenceError(f"cannot read the lease of book {book!r}: {exc}") from exc
        if row is None:
            return None
        return LeaseHolder(owner=row[0], epoch=int(row[1]), expires_at=row[2], valid=bool(row[3]))

    def close(self) -> None:
        """Disconnect (the next call reconnects); the rows stay as they are."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=self.connect_timeout_s
            )
            conn.execute(f"SET lock_timeout = {int(self.lock_timeout_ms)}")
            conn.execute(f"SET statement_timeout = {int(self.statement_timeout_ms)}")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
                conn.execute(DDL)
            self._conn = conn
        return self._conn


def lock_for_commit(
    conn: WriteConnection, book: str, owner: str, epoch: int, *, idle_timeout_ms: int
) -> bool:
    """In ``conn``'s open write transaction: True if ``owner`` still holds ``book`` at ``epoch``.

    The row is locked ``FOR SHARE`` until that transaction ends, so a takeover waits for its
    COMMIT; ``idle_timeout_ms`` bounds how long the transaction may then sit idle (a node
    stopped mid-transaction would otherwise hold the lock, and so block a takeover, forever).
    Database errors propagate to the writer, which fails the write.
    """
    conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_timeout_ms)}")
    params = {"book": book, "owner": owner, "epoch": epoch}
    return conn.execute(_FENCE, params).fetchone() is not None


def books_and_leases(dsn: str) -> tuple[list[str], dict[str, LeaseLeft]]:
    """Every book of the log at ``dsn`` (a stream with events, or a lease) and their leases.

    Works before any node took a lease (no ``leases`` table yet: no leases). Raises
    PersistenceError when the database cannot be read.
    """
    try:
        with psycopg.connect(dsn, autocommit=True) as con:
            has_leases = con.execute(_HAS_LEASES).fetchone()
            if has_leases and has_leases[0]:
                books = [str(r[0]) for r in con.execute(_BOOKS).fetchall()]
                rows = con.execute(_LEASES).fetchall()
            else:
                books = [str(r[0]) for r in con.execute(_BOOKS_NO_LEASES).fetchall()]
                rows = []
    except psycopg.Error as exc:
        raise PersistenceError(f"cluster view: cannot read books and leases: {exc}") from exc
    leases = {str(b): LeaseLeft(str(o), int(e), float(left)) for b, o, e, left in rows}
    return books, leases
