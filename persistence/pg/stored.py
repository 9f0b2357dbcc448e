"""Reads, snapshots and run records of one stream in PostgreSQL (the same semantics as the
DuckDB log's, :mod:`persistence.duckdb_stored`).

- **Reads.** One stream's events by seq, topic, type and time (the shared
  :class:`persistence.reads.LogReads` in the PostgreSQL dialect, hence ``verify_chain``), and
  every stream's events in global commit order (``read_global``, for dashboards). Values are
  always bound parameters; every read flushes the log first, so it sees everything appended
  before the call.
- **Snapshots.** Checksummed, newest usable first (the shared
  :class:`persistence.snapshot_store.SnapshotStore`).
- **Runs.** Marked ``crashed`` when a newer run starts while they still say ``running``.

Writes call the log's fence before COMMIT.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from persistence.chain import CHAIN_COLUMN, ChainAudit
from persistence.codec import EVENT_COLUMNS, row_to_event
from persistence.pg.connect import ConnectionPool
from persistence.queries import POSTGRES, EventFilter, build_where, non_negative
from persistence.recorder import CLEAN, CRASHED, RUNNING, RunRecord
from persistence.snapshot_store import SNAPSHOT_COLUMNS, SnapshotStore, SnapshotValues
from streams.errors import PersistenceError
from streams.events import Event

if TYPE_CHECKING:  # pandas costs ~0.4 s to import: only reads as frames need it
    import pandas as pd

Fence = Callable[[psycopg.Connection], None]

#: The event columns in ``EVENT_COLUMNS`` order (payload as its stored JSON text).
SELECT_COLUMNS = ", ".join("payload::text" if c == "payload" else c for c in EVENT_COLUMNS)

__all__ = ["SELECT_COLUMNS", "Fence", "PgStored"]


class PgStored(ChainAudit, SnapshotStore):
    """Reads (and ``read_global``), snapshots and runs of
    :class:`~persistence.pg.log.PostgresEventLog` (a mixin)."""

    _dialect = POSTGRES
    _select_sql = f"SELECT {SELECT_COLUMNS} FROM events"
    _chain_select_sql = f"SELECT {SELECT_COLUMNS}, {CHAIN_COLUMN} FROM events"

    stream: str
    _pool: ConnectionPool
    _fence: Fence | None

    # -- reads (LogReads' hooks) -------------------------------------------------------------
    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        def run(con: psycopg.Connection) -> list[tuple[Any, ...]]:
            return con.execute(sql, params).fetchall()

        return self._pool.run(run)

    def _frame(self, sql: str, params: list[Any]) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self._fetch(sql, params), columns=list(EVENT_COLUMNS))

    def _where(self, f: EventFilter) -> tuple[str, list[Any]]:
        where, params = build_where(f, POSTGRES)
        return f"stream = %s AND {where}", [self.stream, *params]

    def read_global(
        self, since_gseq: int = 0, limit: int | None = None, topic: str | None = None
    ) -> list[tuple[str, int, Event]]:
        """``(stream, gseq, event)`` of every stream's events with ``gseq > since_gseq``, in
        global commit order (for dashboards showing every node).

        ``gseq`` is assigned at commit under one lock and commits become visible in gseq
        order, so a reader polling with the last gseq it saw never skips an event.
        """
        if isinstance(since_gseq, bool) or not isinstance(since_gseq, int):
            raise PersistenceError(f"since_gseq must be an integer, got {since_gseq!r}")
        sql = f"SELECT stream, gseq, {SELECT_COLUMNS} FROM events WHERE gseq > %s"
        params: list[Any] = [since_gseq]
        if topic is not None:
            where, topic_params = build_where(EventFilter(topic=topic), POSTGRES)  # seq > 0
            sql += f" AND {where}"
            params.extend(topic_params)
        sql += " ORDER BY gseq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(non_negative("limit", limit))
        self.flush()
        return [(r[0], int(r[1]), row_to_event(r[2:])) for r in self._fetch(sql, params)]

    # -- writes -----------------------------------------------------------------------------
    def _write_txn(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """``fn`` in one transaction that calls the fence before committing."""

        def run(con: psycopg.Connection) -> Any:
            with con.transaction():
                result = fn(con)
                if self._fence is not None:
                    self._fence(con)
            return result

        return self._pool.run(run)

    # -- snapshots (SnapshotStore's hooks) ---------------------------------------------------
    def _insert_snapshot(self, values: SnapshotValues) -> int:
        def insert(con: psycopg.Connection) -> int:
            row = con.execute(
                f"INSERT INTO snapshots (stream, {SNAPSHOT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                [self.stream, *values],
            ).fetchone()
            assert row is not None
            return int(row[0])

        snapshot_id: int = self._write_txn(insert)
        return snapshot_id

    def _snapshot_heads(self, max_seq: int | None) -> tuple[list[tuple[int, int]], int]:
        sql = "SELECT id, seq FROM snapshots WHERE stream = %s"
        params: list[Any] = [self.stream]
        if max_seq is not None:
            sql += " AND seq <= %s"
            params.append(max_seq)

        def heads(con: psycopg.Connection) -> tuple[list[tuple[int, int]], int]:
            rows = con.execute(sql + " ORDER BY seq DESC, id DESC", params).fetchall()
            top = con.execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE stream = %s", [self.stream]
            ).fetchone()
            return rows, int(top[0]) if top else 0

        return self._pool.run(heads)

    def _snapshot_body(self, snapshot_id: int) -> tuple[Any, ...] | None:
        def body(con: psycopg.Connection) -> tuple[Any, ...] | None:
            return con.execute(
                "SELECT created_at, schema_version, state::text, checksum, chain_head "
                "FROM snapshots WHERE id = %s",
                [snapshot_id],
            ).fetchone()

        return self._pool.run(body)

    def _snapshot_chain_heads(self) -> list[tuple[int, int, str | None]]:
        def heads(con: psycopg.Connection) -> list[tuple[int, int, str | None]]:
            rows = con.execute(
                "SELECT id, seq, chain_head FROM snapshots WHERE stream = %s ORDER BY seq, id",
                [self.stream],
            ).fetchall()
            return [(int(r[0]), int(r[1]), r[2]) for r in rows]

        return self._pool.run(heads)

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, config_hash: str, *, started_at_ns: int | None = None) -> str:
        """Record the start of an engine run of this stream and return its id.

        Any earlier run of the stream still marked ``running`` did not end cleanly: it becomes
        ``crashed``.
        """
        run_id = uuid.uuid4().hex
        started = time.time_ns() if started_at_ns is None else started_at_ns

        def insert(con: psycopg.Connection) -> None:
            con.execute(
                "UPDATE runs SET how = %s WHERE stream = %s AND how = %s",
                [CRASHED, self.stream, RUNNING],
            )
            con.execute(
                "INSERT INTO runs (run_id, stream, started_at, ended_at, how, config_hash, pid) "
                "VALUES (%s, %s, %s, NULL, %s, %s, %s)",
                [run_id, self.stream, started, RUNNING, config_hash, os.getpid()],
            )

        self._write_txn(insert)
        return run_id

    def end_run(self, run_id: str, how: str = CLEAN, *, ended_at_ns: int | None = None) -> None:
        """Record how run ``run_id`` ended (e.g. ``clean``, ``halted``, ``crashed``)."""
        ended = time.time_ns() if ended_at_ns is None else ended_at_ns

        def update(con: psycopg.Connection) -> tuple[Any, ...] | None:
            return con.execute(
                "UPDATE runs SET how = %s, ended_at = %s WHERE run_id = %s AND stream = %s "
                "RETURNING run_id",
                [how, ended, run_id, self.stream],
            ).fetchone()

        if self._write_txn(update) is None:
            raise PersistenceError(f"run_id {run_id!r} is not a recorded run")

    def runs(self) -> list[RunRecord]:
        """Every recorded run of this stream, oldest first."""

        def select(con: psycopg.Connection) -> list[tuple[Any, ...]]:
            return con.execute(
                "SELECT run_id, started_at, ended_at, how, config_hash, pid FROM runs "
                "WHERE stream = %s ORDER BY started_at, run_id",
                [self.stream],
            ).fetchall()

        return [RunRecord(*r) for r in self._pool.run(select)]
