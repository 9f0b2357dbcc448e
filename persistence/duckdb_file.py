"""The DuckDB file of the event log: its tables, connecting, and the Arrow insert of a batch.

``events`` has no index on event_id (only the ``seq`` primary key): DuckDB keeps every ART
index (UNIQUE, PRIMARY KEY) wholly in memory and cannot evict it, so a UNIQUE(event_id) grew
resident memory by ~6.7 MiB per 100k events for ever (docs/reliability.md, Soak). Idempotence
is the log's in-memory dedup instead; the seq primary key is cheap (sequential keys). Files
written with the old UNIQUE(event_id) are migrated at open (:mod:`persistence.duckdb_repair`).

``chain_hash`` (BLOB, 32 bytes) is each row's link in the hash chain (:mod:`persistence.chain`),
and ``snapshots.chain_head`` (hex) the chain head at a snapshot's seq; files written before
them get both at open, hashes computed for every row (:mod:`persistence.duckdb_repair`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from persistence.chain import STORED_COLUMNS
from persistence.codec import EVENT_COLUMNS
from streams.errors import PersistenceError

_EVENT_COLUMN_DEFS = """
        seq BIGINT PRIMARY KEY,
        event_id VARCHAR NOT NULL,
        ts_event BIGINT NOT NULL,
        ts_init BIGINT NOT NULL,
        topic VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        schema_version INTEGER NOT NULL,
        critical BOOLEAN NOT NULL,
        payload JSON NOT NULL,
        correlation_id VARCHAR,
        causation_id VARCHAR"""
#: The events table's columns (``STORED_COLUMNS``).
EVENTS_COLUMNS = "(" + _EVENT_COLUMN_DEFS + ",\n        chain_hash BLOB\n    )"
#: The events table as written before the hash chain (``EVENT_COLUMNS``): what the rebuild
#: of a file with UNIQUE(event_id), older still, makes (the chain is added after it).
UNCHAINED_EVENTS_COLUMNS = "(" + _EVENT_COLUMN_DEFS + "\n    )"

DDL = (
    "CREATE TABLE IF NOT EXISTS events " + EVENTS_COLUMNS,
    """
    CREATE TABLE IF NOT EXISTS snapshots (
        id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        schema_version INTEGER NOT NULL,
        state JSON NOT NULL,
        checksum VARCHAR NOT NULL,
        chain_head VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        how VARCHAR NOT NULL,
        config_hash VARCHAR,
        pid INTEGER
    )
    """,
)

SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("ts_event", pa.int64()),
        ("ts_init", pa.int64()),
        ("topic", pa.string()),
        ("type", pa.string()),
        ("schema_version", pa.int32()),
        ("critical", pa.bool_()),
        ("payload", pa.string()),
        ("correlation_id", pa.string()),
        ("causation_id", pa.string()),
        ("chain_hash", pa.binary(32)),
    ]
)
SELECT = "SELECT " + ", ".join(EVENT_COLUMNS) + " FROM events"


def connect(path: str, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """Connect to the file; PersistenceError saying why not (held by another process, a
    ``memory_limit`` DuckDB refuses, anything else)."""
    # memory_limit goes in at connect so that it also bounds the WAL replay of the open.
    config: dict[str, str | bool | int | float | list[str]] = (
        {"memory_limit": memory_limit} if memory_limit else {}
    )
    try:
        return duckdb.connect(path, config=config)
    except duckdb.Error as exc:
        message = str(exc)
        if config and isinstance(exc, duckdb.ParserException) and "memory" in message.lower():
            raise PersistenceError(
                f"event log {path!r}: DuckDB refused memory_limit "
                f"{memory_limit!r} (expected e.g. '256MB' or '1GiB'): {message}"
            ) from exc
        if "lock" in message.lower():
            pid = re.search(r"PID (\d+)", message)
            holder = f" (PID {pid.group(1)})" if pid else ""
            raise PersistenceError(
                f"event log file {path!r} is held by another process{holder}; "
                "only one engine may open it at a time"
            ) from None
        raise PersistenceError(f"cannot open event log file {path!r}: {message}") from exc


#: Batches up to this many rows go in through the appender (or, without one, as one
#: parameterized statement), larger ones as Arrow.
SMALL_BATCH_ROWS = 16
_ROW_PLACEHOLDERS = "(" + ", ".join("?" * len(STORED_COLUMNS)) + ")"
_INSERT_SQL: dict[tuple[str, int], str] = {}
_CHAIN_TYPE = SCHEMA.field("chain_hash").type


def events_appender(cur: duckdb.DuckDBPyConnection) -> Any | None:
    """A DuckDB appender for ``events`` on ``cur`` (keep one per writer cursor: its first
    flush costs more than a statement), or None where DuckDB has none (before 2.0)."""
    make = getattr(cur, "appender", None)
    return make("events", columns=list(STORED_COLUMNS)) if make is not None else None


def insert(
    cur: duckdb.DuckDBPyConnection,
    rows: Sequence[Sequence[Any]],
    appender: Any = None,
    *,
    chain: Sequence[bytes] | None = None,
    table: str = "events",
) -> None:
    """Insert ``rows`` into ``table`` (``events``) in one transaction.

    ``rows`` are in ``STORED_COLUMNS`` order (the chain hash, 32 bytes, last) or, with
    ``chain`` (each row's chain hash, in order), in ``EVENT_COLUMNS`` order: the writer keeps
    its hashes apart, so a large batch's hash column is one buffer, not one value per row.

    In auto-commit mode one statement is one transaction: the batch is committed (one WAL
    fsync) or rolled back as a whole. A small batch (a critical event and what shares its
    commit) goes through ``appender`` (from :func:`events_appender` on the same cursor): its
    flush is one statement, and it binds the rows in DuckDB instead of one parameter per
    value (idle, 8 rows: 2.4-2.9 ms against 4.4-4.7 ms; `bench.commit_path`). A flush that
    fails is rolled back and its rows dropped from the appender (the writer retries with
    the same rows). Without an appender a small batch is one parameterized
    ``INSERT ... VALUES``. Either way it is one call into DuckDB that gives the GIL up, so the
    writer takes the GIL back once: the Arrow path makes several calls, and each return waits
    behind the process's busy threads (a 2-row commit beside one busy thread: 23 ms instead
    of 45 ms at CPython's 5 ms switch interval). A batch of more than 16 rows goes as one
    Arrow table.
    """
    if not rows:
        return
    if len(rows) <= SMALL_BATCH_ROWS:
        if chain is not None:
            rows = [(*row, digest) for row, digest in zip(rows, chain, strict=True)]
        if appender is not None and table == "events":
            try:
                appender.append_rows(rows)
                appender.flush()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    appender.clear()
                raise
            return
        sql = _INSERT_SQL.get((table, len(rows)))
        if sql is None:
            sql = _INSERT_SQL.setdefault(
                (table, len(rows)),
                f"INSERT INTO {table} ({', '.join(STORED_COLUMNS)}) VALUES "
                + ", ".join([_ROW_PLACEHOLDERS] * len(rows)),
            )
        cur.execute(sql, [value for row in rows for value in row])
        return
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(list(col), type=field.type) for col, field in zip(columns, SCHEMA, strict=False)
    ]
    if chain is not None:
        if len(chain) != len(rows):
            raise ValueError(f"{len(chain)} chain hashes for {len(rows)} rows")
        arrays.append(
            pa.FixedSizeBinaryArray.from_buffers(
                _CHAIN_TYPE, len(chain), [None, pa.py_buffer(b"".join(chain))]
            )
        )
    cur.from_arrow(pa.Table.from_arrays(arrays, schema=SCHEMA)).insert_into(table)
