"""What the DuckDB event log repairs when it opens a file, before it loads seq and ids.

- **A damaged write-ahead log.** DuckDB refuses it (or would stop replaying at the damage):
  the WAL is moved aside (kept for inspection) and the last checkpoint opened.
- **Lost critical events.** Every committed critical row is also in the
  :class:`~persistence.critical_journal.CriticalJournal`; those the database lacks are inserted
  again (non-critical events of that span may be missing: holes in seq, reported).
- **The old UNIQUE(event_id).** A file written before it was dropped is rebuilt once without
  it (see :func:`drop_event_id_index`).

Each function logs what it did to the log's logger.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path

import duckdb

from persistence.codec import EVENT_COLUMNS
from persistence.critical_journal import CriticalJournal
from persistence.duckdb_file import EVENTS_COLUMNS, insert
from streams.errors import PersistenceError

# The rebuild of a file written before UNIQUE(event_id) was dropped, in one transaction: the
# statements run between BEGIN and COMMIT.
MIGRATION_TABLE = "events__migrating"
MIGRATE_EVENTS: tuple[str, ...] = (
    f"DROP TABLE IF EXISTS {MIGRATION_TABLE}",
    f"CREATE TABLE {MIGRATION_TABLE} " + EVENTS_COLUMNS,
    f"INSERT INTO {MIGRATION_TABLE} SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY seq",
    "DROP TABLE events",
    f"ALTER TABLE {MIGRATION_TABLE} RENAME TO events",
)


def connect_or_set_wal_aside(
    connect: Callable[[], duckdb.DuckDBPyConnection], path: str, log: logging.Logger
) -> duckdb.DuckDBPyConnection:
    """``connect()``; if DuckDB refuses a damaged write-ahead log, move the WAL aside (kept
    for inspection) and open the last checkpoint: the critical journal restores the rest."""
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
            "opening the last checkpoint; critical events come back from the journal",
            path,
            exc,
            aside,
        )
        return connect()


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
    try:
        cur.execute("BEGIN TRANSACTION")
        before = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchall()
        for sql in statements:
            cur.execute(sql)
        after = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchall()
        if after != before:
            raise PersistenceError(f"rows (count, max seq) {before} became {after}")
        cur.execute("COMMIT")
    except (duckdb.Error, PersistenceError) as exc:
        with suppress(duckdb.Error):
            cur.execute("ROLLBACK")
        raise PersistenceError(
            f"event log {path!r}: dropping UNIQUE(event_id) failed, the file is unchanged: {exc}"
        ) from exc
    cur.execute("CHECKPOINT")
    log.warning(
        "event log %s: migrated the events table to drop UNIQUE(event_id) (%d rows, "
        "last seq %d) in %.2f s; event ids are deduplicated in memory from now on",
        path,
        before[0][0],
        before[0][1],
        time.monotonic() - started,
    )


def restore_from_journal(
    cur: duckdb.DuckDBPyConnection, journal: CriticalJournal, path: str, log: logging.Logger
) -> int:
    """Insert every journaled critical event the database lacks; returns how many."""
    rows = journal.read()
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
        insert(cur, [tuple(r) for r in missing])
        log.error(
            "event log %s: restored %d critical event(s) (seq %d..%d) from the critical "
            "journal that the database had lost; non-critical events of that span may be "
            "missing",
            path,
            len(missing),
            missing[0][0],
            missing[-1][0],
        )
    return len(missing)
