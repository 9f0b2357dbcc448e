"""The PostgreSQL schema, created and upgraded by versioned migrations.

``schema_migrations`` records every applied version. :func:`migrate` applies the missing
ones, in order, in one transaction under an advisory lock, so several engine nodes opening
the same database at once neither race nor apply a migration twice. A database whose schema
is newer than this code knows is refused (an old node must not write a newer layout).

Tables (every row keyed by ``stream``, the book of one engine):

- ``events``: ``(stream, seq)`` primary key, ``gseq`` unique (the global commit order across
  all streams, gapless), ``(stream, event_id)`` unique (idempotent appends).
- ``snapshots``: checksummed states per stream; ``runs``: how each engine run ended.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from streams.errors import PersistenceError

#: Advisory lock key serialising migrations (any fixed 64-bit value unique to this use).
MIGRATION_LOCK = 0x5EA3_1E55_0000_0001
#: Advisory lock key serialising commits of events, so ``gseq`` follows commit order.
GSEQ_LOCK = 0x5EA3_1E55_0000_0002


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, a short description, and the statements to apply."""

    version: int
    name: str
    statements: tuple[str, ...]


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
                con.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    [migration.version, migration.name],
                )
    except psycopg.Error as exc:
        raise PersistenceError(f"PostgreSQL schema migration failed: {exc}") from exc
    return SCHEMA_VERSION
