"""Snapshots and run records of one stream in PostgreSQL (the same semantics as the DuckDB
log's): checksummed snapshots, newest usable first (the shared
:class:`persistence.snapshot_store.SnapshotStore`); runs marked ``crashed`` when a newer run
starts while they still say ``running``. Writes call the log's fence before COMMIT.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from persistence.pg.connect import ConnectionPool
from persistence.records import CLEAN, CRASHED, RUNNING, RunRecord
from persistence.snapshot_store import SnapshotStore, checksum
from streams.errors import PersistenceError

Fence = Callable[[psycopg.Connection], None]

__all__ = ["Fence", "PgStored", "checksum"]


class PgStored(SnapshotStore):
    """Snapshots and runs of :class:`~persistence.pg.log.PostgresEventLog` (a mixin)."""

    stream: str
    _pool: ConnectionPool
    _fence: Fence | None

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
    def _insert_snapshot(
        self,
        seq: int,
        created_at: int,
        schema_version: int,
        text: str,
        digest: str,
        chain_head: str,
    ) -> int:
        def insert(con: psycopg.Connection) -> int:
            row = con.execute(
                "INSERT INTO snapshots (stream, seq, created_at, schema_version, state, "
                "checksum, chain_head) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                [self.stream, seq, created_at, schema_version, text, digest, chain_head],
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
