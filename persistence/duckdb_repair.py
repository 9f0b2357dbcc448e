"""What the DuckDB event log repairs when it opens a file, before it loads seq and ids.

- **A damaged write-ahead log.** DuckDB refuses it (or would stop replaying at the damage):
  the WAL is moved aside (kept for inspection) and the last checkpoint opened.
- **Events the database does not hold.** Every acknowledged row is in the
  :class:`~persistence.event_journal.EventJournal` first; those past the database's last seq
  (a crash before they were moved in, or a WAL set aside) are inserted. The critical-only
  journal of earlier versions (``<db>.critical``) is read the same way.
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
from typing import Any

import duckdb

from persistence.codec import EVENT_COLUMNS
from persistence.duckdb_file import EVENTS_COLUMNS, insert
from persistence.event_journal import read_rows
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
    cur: duckdb.DuckDBPyConnection,
    journals: Sequence[str | os.PathLike[str]],
    path: str,
    log: logging.Logger,
) -> int:
    """Insert every journaled row past the database's last seq; returns how many.

    The database holds a prefix of seq (the writer moves rows in, in seq order, only after
    they are journaled), so the rows it lacks are exactly those past its ``max(seq)``; a row
    journaled twice (a retried write) is put back once. ``journals`` are read in order.
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
    rows = [tuple(missing[seq]) for seq in sorted(missing)]
    for start in range(0, len(rows), _RESTORE_CHUNK):
        insert(cur, rows[start : start + _RESTORE_CHUNK])
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


#: Rows put back per insert (one Arrow table each).
_RESTORE_CHUNK = 50_000
