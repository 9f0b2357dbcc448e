"""What the DuckDB event log repairs when it opens a file, before it loads seq and ids.

- **A damaged write-ahead log.** DuckDB refuses it (or would stop replaying at the damage):
  the WAL is moved aside (kept for inspection) and the last checkpoint opened.
- **Events the database does not hold.** Every acknowledged row is in the
  :class:`~persistence.event_journal.EventJournal` first; those past the database's last seq
  (a crash before they were moved in, or a WAL set aside) are inserted. The critical-only
  journal of earlier versions (``<db>.critical``) is read the same way.
- **The old UNIQUE(event_id).** A file written before it was dropped is rebuilt once without
  it (see :func:`drop_event_id_index`).
- **No hash chain.** A file written before the hash chain is rebuilt once with it, every row's
  hash computed in seq order, and its snapshots get their chain heads (see
  :func:`add_hash_chain`).

Each function logs what it did to the log's logger.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from persistence.chain import GENESIS, GENESIS_HEX, head_bytes, link, link_rows
from persistence.codec import EVENT_COLUMNS
from persistence.duckdb_file import EVENTS_COLUMNS, UNCHAINED_EVENTS_COLUMNS, insert
from persistence.event_journal import read_rows
from streams.errors import PersistenceError

# The rebuild of a file written before UNIQUE(event_id) was dropped, in one transaction: the
# statements run between BEGIN and COMMIT. Such a file predates the hash chain too:
# add_hash_chain rebuilds it again afterwards, with the chain.
MIGRATION_TABLE = "events__migrating"
MIGRATE_EVENTS: tuple[str, ...] = (
    f"DROP TABLE IF EXISTS {MIGRATION_TABLE}",
    f"CREATE TABLE {MIGRATION_TABLE} " + UNCHAINED_EVENTS_COLUMNS,
    f"INSERT INTO {MIGRATION_TABLE} SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY seq",
    "DROP TABLE events",
    f"ALTER TABLE {MIGRATION_TABLE} RENAME TO events",
)


def connect_or_set_wal_aside(
    connect: Callable[[], duckdb.DuckDBPyConnection], path: str, log: logging.Logger
) -> duckdb.DuckDBPyConnection:
    """``connect()``; if DuckDB refuses a damaged write-ahead log, move the WAL aside (kept
    for inspection) and open the last checkpoint: the event journal restores the rest."""
    try:
        return connect()
    except PersistenceError as exc:
        wal = Path(path + ".wal")
        if "WAL" not in str(exc) or not wal.exists():
            raise
        aside = wal.with_name(f"{wal.name}.corrupt-{time.time_ns()}")
        os.replace(wal, aside)
        log.error(
            "event log %s: DuckDB refused its write-ahead log (%s); moved it to %s and "
            "opening the last checkpoint; the events after it come back from the journal",
            path,
            exc,
            aside,
        )
        return connect()


@contextmanager
def _rebuild(cur: duckdb.DuckDBPyConnection, path: str, what: str) -> Iterator[None]:
    """The body as one DuckDB transaction, then a CHECKPOINT writing it into the main file. On
    an error it is rolled back (a crash before COMMIT does the same): PersistenceError saying
    ``what`` failed and the file is unchanged."""
    try:
        cur.execute("BEGIN TRANSACTION")
        yield
        cur.execute("COMMIT")
    except (duckdb.Error, PersistenceError) as exc:
        with suppress(duckdb.Error):
            cur.execute("ROLLBACK")
        raise PersistenceError(
            f"event log {path!r}: {what} failed, the file is unchanged: {exc}"
        ) from exc
    cur.execute("CHECKPOINT")


def drop_event_id_index(
    cur: duckdb.DuckDBPyConnection,
    path: str,
    log: logging.Logger,
    statements: Sequence[str] = MIGRATE_EVENTS,
) -> None:
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
    with _rebuild(cur, path, "dropping UNIQUE(event_id)"):
        before = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchall()
        for sql in statements:
            cur.execute(sql)
        after = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchall()
        if after != before:
            raise PersistenceError(f"rows (count, max seq) {before} became {after}")
    log.warning(
        "event log %s: migrated the events table to drop UNIQUE(event_id) (%d rows, "
        "last seq %d) in %.2f s; event ids are deduplicated in memory from now on",
        path,
        before[0][0],
        before[0][1],
        time.monotonic() - started,
    )


def restore_from_journal(
    cur: duckdb.DuckDBPyConnection,
    journals: Sequence[str | os.PathLike[str]],
    path: str,
    log: logging.Logger,
) -> int:
    """Insert every journaled row past the database's last seq; returns how many.

    The database holds a prefix of seq (the writer moves rows in, in seq order, only after
    they are journaled), so the rows it lacks are exactly those past its ``max(seq)``; a row
    journaled twice (a retried write) is put back once. ``journals`` are read in order. A row
    keeps the chain hash the journal holds for it; a row journaled before the hash chain
    (none) is chained on from the one before it.
    """
    row = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
    stored = int(row[0]) if row else 0
    missing: dict[int, list[Any]] = {}
    for journal in journals:
        for r in read_rows(journal):
            if r[0] > stored:
                missing.setdefault(r[0], r)
    if not missing:
        return 0
    found = cur.execute("SELECT chain_hash FROM events WHERE seq = ?", [stored]).fetchall()
    head = head_bytes(found[0][0] if found else None)
    rows: list[tuple[Any, ...]] = []
    chain: list[bytes] = []
    for seq in sorted(missing):
        values = missing[seq]
        event = tuple(values[: len(EVENT_COLUMNS)])
        journaled = values[len(EVENT_COLUMNS)] if len(values) > len(EVENT_COLUMNS) else None
        head = _journaled_hash(journaled) or link(head, event)
        rows.append(event)
        chain.append(head)
    for start in range(0, len(rows), _RESTORE_CHUNK):
        end = start + _RESTORE_CHUNK
        insert(cur, rows[start:end], chain=chain[start:end])
    holes = rows[-1][0] - stored - len(rows)
    log.warning(
        "event log %s: put back %d event(s) (seq %d..%d) from the journal that the database "
        "did not hold%s",
        path,
        len(rows),
        rows[0][0],
        rows[-1][0],
        f"; {holes} seq(s) in that span are missing (an older critical-only journal)"
        if holes
        else "",
    )
    return len(rows)


def _journaled_hash(value: object) -> bytes | None:
    """A journaled chain hash (64 hex characters) as 32 bytes; None if there is none (or it
    is not one: the row is chained again, and verify_chain reports it if it differs)."""
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


#: The table a file without the hash chain is rebuilt into (then renamed to ``events``).
CHAIN_TABLE = "events__chaining"


def _columns(cur: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = cur.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def add_hash_chain(
    cur: duckdb.DuckDBPyConnection,
    path: str,
    log: logging.Logger,
    *,
    batch_size: int = 50_000,
) -> int:
    """Give a file written before the hash chain its ``chain_hash`` column, every row's hash
    computed in seq order, and its snapshots their ``chain_head``; a no-op for a file that
    has them. Returns how many rows were hashed.

    Like :func:`drop_event_id_index`, one DuckDB transaction: the rows are copied, in
    batches of ``batch_size`` seqs (never the whole log in memory), into a new table with the
    column (large inserts spill to the file, not to memory), which then replaces ``events``;
    a crash or an error before COMMIT leaves the file as it was, and the next open does it
    again. A CHECKPOINT then writes it to the main file. Raises PersistenceError (file
    unchanged) on failure. Logs how many rows, the head and how long it took.
    """
    chain_events = "chain_hash" not in _columns(cur, "events")
    chain_snapshots = "chain_head" not in _columns(cur, "snapshots")
    if not chain_events and not chain_snapshots:
        return 0
    started = time.monotonic()
    hashed, head = 0, GENESIS
    with _rebuild(cur, path, "adding the hash chain"):
        snapshots = cur.execute("SELECT id, seq FROM snapshots ORDER BY seq, id").fetchall()
        heads: dict[int, str | None] = {}
        if chain_events:
            hashed, head = _rebuild_with_chain(cur, snapshots, heads, batch_size)
        else:
            for snapshot_id, seq in snapshots:
                found = cur.execute("SELECT chain_hash FROM events WHERE seq = ?", [seq]).fetchall()
                heads[snapshot_id] = (
                    GENESIS_HEX if seq <= 0 else bytes(found[0][0]).hex() if found else None
                )
        if chain_snapshots:
            cur.execute("ALTER TABLE snapshots ADD COLUMN chain_head VARCHAR")
        if heads:
            table = pa.table(
                {
                    "id": pa.array(list(heads), pa.int64()),
                    "head": pa.array(list(heads.values()), pa.string()),
                }
            )
            cur.register("chain_heads__upgrade", table)
            try:
                cur.execute(
                    "UPDATE snapshots SET chain_head = h.head FROM chain_heads__upgrade h "
                    "WHERE snapshots.id = h.id AND snapshots.chain_head IS NULL"
                )
            finally:
                cur.unregister("chain_heads__upgrade")
    log.warning(
        "event log %s: added the hash chain: %d row(s) hashed in seq order in %.2f s (chain "
        "head %s), %d snapshot(s) given their chain head",
        path,
        hashed,
        time.monotonic() - started,
        head.hex(),
        len(heads),
    )
    return hashed


def _rebuild_with_chain(
    cur: duckdb.DuckDBPyConnection,
    snapshots: list[tuple[Any, ...]],
    heads: dict[int, str | None],
    batch_size: int,
) -> tuple[int, bytes]:
    """Copy ``events`` into a new table with every row's chain hash, in seq order and in
    batches, and put it in its place; fills ``heads`` with each snapshot's chain head (the
    hash of the last row at or below its seq). Runs inside the caller's transaction. Returns
    (rows, head)."""
    before = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchall()[0]
    top = int(before[1])
    cur.execute(f"DROP TABLE IF EXISTS {CHAIN_TABLE}")
    cur.execute(f"CREATE TABLE {CHAIN_TABLE} " + EVENTS_COLUMNS)
    select = (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq"
    )
    pending = [(int(i), int(s)) for i, s in snapshots]
    at = 0
    while at < len(pending) and pending[at][1] <= 0:
        heads[pending[at][0]] = GENESIS_HEX
        at += 1
    head, hashed, low = GENESIS, 0, 0
    while low < top:
        high = min(low + batch_size, top)
        rows = cur.execute(select, [low, high]).fetchall()
        if rows:
            _, digests, new_head = link_rows(head, rows)
            seqs = [r[0] for r in rows]
            while at < len(pending) and pending[at][1] <= high:
                k = bisect.bisect_right(seqs, pending[at][1]) - 1
                heads[pending[at][0]] = (digests[k] if k >= 0 else head).hex()
                at += 1
            insert(cur, rows, chain=digests, table=CHAIN_TABLE)
            head, hashed = new_head, hashed + len(rows)
        low = high
    for snapshot_id, _ in pending[at:]:
        heads[snapshot_id] = head.hex()  # at or beyond the last row: its hash
    after = cur.execute(f"SELECT count(*), coalesce(max(seq), 0) FROM {CHAIN_TABLE}").fetchall()
    if tuple(after[0]) != tuple(before):
        raise PersistenceError(f"rows (count, max seq) {tuple(before)} became {tuple(after[0])}")
    cur.execute("DROP TABLE events")
    cur.execute(f"ALTER TABLE {CHAIN_TABLE} RENAME TO events")
    return hashed, head


#: Rows put back per insert (one Arrow table each).
_RESTORE_CHUNK = 50_000
