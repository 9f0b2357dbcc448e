"""The PostgreSQL schema, created and upgraded by versioned migrations.

``schema_migrations`` records every applied version. :func:`migrate` applies the missing
ones, in order, in one transaction under an advisory lock, so several engine nodes opening
the same database at once neither race nor apply a migration twice. A database whose schema
is newer than this code knows is refused (an old node must not write a newer layout).

Tables (every row keyed by ``stream``, the book of one engine):

- ``events``: ``(stream, seq)`` primary key, ``gseq`` unique (the global commit order across
  all streams, gapless), ``(stream, event_id)`` unique (idempotent appends).
- ``snapshots``: checksummed states per stream; ``runs``: how each engine run ended.

Version 2 adds the hash chain (:mod:`persistence.chain`): ``events.chain_hash`` (bytea), one
chain per stream, and ``snapshots.chain_head``; its migration computes the hashes of every
row already stored, stream by stream in seq order and in batches, and each snapshot's head.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from persistence.chain import GENESIS, GENESIS_HEX, link_rows
from persistence.codec import EVENT_COLUMNS
from streams.errors import PersistenceError

log = logging.getLogger(__name__)

#: Advisory lock key serialising migrations (any fixed 64-bit value unique to this use).
MIGRATION_LOCK = 0x5EA3_1E55_0000_0001
#: Advisory lock key serialising commits of events, so ``gseq`` follows commit order.
GSEQ_LOCK = 0x5EA3_1E55_0000_0002


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, a short description, the statements to apply, and
    optionally a function run after them (in the same transaction) to fill in data."""

    version: int
    name: str
    statements: tuple[str, ...]
    run: Callable[[psycopg.Connection], object] | None = None


#: Rows hashed per statement when the chain is added to stored events.
CHAIN_BATCH = 50_000
_CHAIN_SELECT = (
    "SELECT "
    + ", ".join("payload::text" if c == "payload" else c for c in EVENT_COLUMNS)
    + " FROM events WHERE stream = %s AND seq > %s ORDER BY seq LIMIT %s"
)


def chain_stored_events(con: psycopg.Connection, batch_size: int = CHAIN_BATCH) -> int:
    """Compute the chain hash of every stored event, stream by stream in seq order, in
    batches of ``batch_size`` rows, and every snapshot's chain head; returns how many rows.
    Run by migration 2, inside its transaction; logs how many rows and how long."""
    started = time.monotonic()
    streams = [r[0] for r in con.execute("SELECT DISTINCT stream FROM events ORDER BY 1")]
    total = 0
    for stream in streams:
        head, last = GENESIS, 0
        while True:
            rows = con.execute(_CHAIN_SELECT, [stream, last, batch_size]).fetchall()
            if not rows:
                break
            _, digests, head = link_rows(head, rows)
            con.execute(
                "UPDATE events AS e SET chain_hash = d.h "
                "FROM unnest(%s::bigint[], %s::bytea[]) AS d(seq, h) "
                "WHERE e.stream = %s AND e.seq = d.seq",
                [[r[0] for r in rows], digests, stream],
            )
            last = rows[-1][0]
            total += len(rows)
    snapshots = con.execute(
        "UPDATE snapshots AS s SET chain_head = coalesce((SELECT encode(e.chain_hash, 'hex') "
        "FROM events e WHERE e.stream = s.stream AND e.seq <= s.seq ORDER BY e.seq DESC "
        "LIMIT 1), %s) WHERE s.chain_head IS NULL",
        [GENESIS_HEX],
    ).rowcount
    log.warning(
        "PostgreSQL event log: added the hash chain: %d row(s) of %d stream(s) hashed in seq "
        "order in %.2f s, %d snapshot(s) given their chain head",
        total,
        len(streams),
        time.monotonic() - started,
        snapshots,
    )
    return total


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, snapshots and runs keyed by stream",
        (
            """
            CREATE TABLE events (
                stream text NOT NULL,
                seq bigint NOT NULL,
                gseq bigint NOT NULL,
                event_id text NOT NULL,
                ts_event bigint NOT NULL,
                ts_init bigint NOT NULL,
                topic text NOT NULL,
                type text NOT NULL,
                schema_version integer NOT NULL,
                critical boolean NOT NULL,
                payload json NOT NULL,
                correlation_id text,
                causation_id text,
                CONSTRAINT events_pkey PRIMARY KEY (stream, seq),
                CONSTRAINT events_gseq_key UNIQUE (gseq),
                CONSTRAINT events_event_id_key UNIQUE (stream, event_id)
            )
            """,
            "CREATE INDEX events_stream_topic ON events (stream, topic, seq)",
            "CREATE INDEX events_stream_ts ON events (stream, ts_event)",
            """
            CREATE TABLE snapshots (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                stream text NOT NULL,
                seq bigint NOT NULL,
                created_at bigint NOT NULL,
                schema_version integer NOT NULL,
                state json NOT NULL,
                checksum text NOT NULL
            )
            """,
            "CREATE INDEX snapshots_stream_seq ON snapshots (stream, seq DESC, id DESC)",
            """
            CREATE TABLE runs (
                run_id text PRIMARY KEY,
                stream text NOT NULL,
                started_at bigint NOT NULL,
                ended_at bigint,
                how text NOT NULL,
                config_hash text,
                pid integer
            )
            """,
            "CREATE INDEX runs_stream ON runs (stream, started_at)",
        ),
    ),
    Migration(
        2,
        "hash chain: events.chain_hash per stream, snapshots.chain_head",
        (
            "ALTER TABLE events ADD COLUMN chain_hash bytea",
            "ALTER TABLE snapshots ADD COLUMN chain_head text",
        ),
        run=chain_stored_events,
    ),
)

#: The schema version this code writes.
SCHEMA_VERSION = MIGRATIONS[-1].version


def applied_versions(con: psycopg.Connection) -> list[int]:
    """The migration versions recorded in ``schema_migrations`` (empty if none), ascending."""
    row = con.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    return [int(r[0]) for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def migrate(con: psycopg.Connection) -> int:
    """Apply the missing migrations in order (one transaction); return the schema version.

    Raises PersistenceError if the database is at a version this code does not know.
    """
    try:
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            con.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            done = set(applied_versions(con))
            unknown = sorted(done - {m.version for m in MIGRATIONS})
            if unknown:
                raise PersistenceError(
                    f"database schema version {unknown[-1]} is newer than this code "
                    f"(knows up to {SCHEMA_VERSION}); upgrade Seamless before opening it"
                )
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    con.execute(statement)  # fixed DDL, not input
                if migration.run is not None:
                    migration.run(con)
                con.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    [migration.version, migration.name],
                )
    except psycopg.Error as exc:
        raise PersistenceError(f"PostgreSQL schema migration failed: {exc}") from exc
    return SCHEMA_VERSION
