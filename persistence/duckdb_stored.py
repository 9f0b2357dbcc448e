"""Reads, snapshots and run records of the DuckDB event log (a mixin of
:class:`persistence.event_log.EventLog`; the PostgreSQL log's are :mod:`persistence.pg.stored`).

Every read runs on its own DuckDB cursor of the log's connection (the writer has its own); a
read that fails raises PersistenceError naming the file. The
filters are the shared :class:`persistence.reads.LogReads` (hence ``verify_chain``:
:class:`persistence.chain.ChainAudit`), snapshots the shared
:class:`persistence.snapshot_store.SnapshotStore`; here are the DuckDB queries under them, and
the ``runs`` table (a run still ``running`` when a newer one starts is marked ``crashed``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb

from persistence import duckdb_file
from persistence.chain import STORED_COLUMNS, ChainAudit
from persistence.queries import DUCKDB
from persistence.recorder import CLEAN, CRASHED, RUNNING, RunRecord
from persistence.snapshot_store import SNAPSHOT_COLUMNS, SnapshotStore, SnapshotValues
from streams.errors import PersistenceError

if TYPE_CHECKING:  # pandas costs ~0.4 s to import: only reads as frames need it
    import pandas as pd

__all__ = ["DuckDBStored"]


class DuckDBStored(ChainAudit, SnapshotStore):
    """Reads, snapshots and runs of the DuckDB event log, on cursors of its connection
    (``_root``, created and replaced by the log under ``_con_lock``)."""

    _dialect = DUCKDB
    _select_sql = duckdb_file.SELECT
    _chain_select_sql = f"SELECT {', '.join(STORED_COLUMNS)} FROM events"

    _root: duckdb.DuckDBPyConnection | None
    _con_lock: threading.Lock  # guards (re)connecting and cursor creation
    _snapshot_lock: threading.Lock  # one snapshot id at a time

    # -- reads (LogReads' and SnapshotStore's hooks) -----------------------------------------
    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._con_lock:
            if self._root is None:
                raise PersistenceError(f"event log {self.path!r} is not open")
            cur = self._root.cursor()
        try:
            yield cur
        except duckdb.Error as exc:
            raise PersistenceError(f"event log {self.path!r}: read failed: {exc}") from exc
        finally:
            cur.close()

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._reader() as cur:
            return cur.execute(sql, params).fetchall()

    def _frame(self, sql: str, params: list[Any]) -> pd.DataFrame:
        with self._reader() as cur:
            return cur.execute(sql, params).df()

    def _insert_snapshot(self, values: SnapshotValues) -> int:
        with self._snapshot_lock, self._reader() as cur:
            row = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM snapshots").fetchall()[0]
            snapshot_id = int(row[0]) if row else 1
            cur.execute(
                f"INSERT INTO snapshots (id, {SNAPSHOT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [snapshot_id, *values],
            )
        return snapshot_id

    def _snapshot_heads(self, max_seq: int | None) -> tuple[list[tuple[int, int]], int]:
        with self._reader() as cur:
            params: list[Any] = []
            sql = "SELECT id, seq FROM snapshots"
            if max_seq is not None:
                sql += " WHERE seq <= ?"
                params.append(max_seq)
            heads = cur.execute(sql + " ORDER BY seq DESC, id DESC", params).fetchall()
            top = cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()[0]
        return heads, int(top[0]) if top else 0

    def _snapshot_body(self, snapshot_id: int) -> tuple[Any, ...] | None:
        with self._reader() as cur:
            rows = cur.execute(
                "SELECT created_at, schema_version, state, checksum, chain_head FROM snapshots "
                "WHERE id = ?",
                [snapshot_id],
            ).fetchall()
        return rows[0] if rows else None

    def _snapshot_chain_heads(self) -> list[tuple[int, int, str | None]]:
        with self._reader() as cur:
            return [
                (int(r[0]), int(r[1]), r[2])
                for r in cur.execute(
                    "SELECT id, seq, chain_head FROM snapshots ORDER BY seq, id"
                ).fetchall()
            ]

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, config_hash: str, *, started_at_ns: int | None = None) -> str:
        """Record the start of an engine run and return its id.

        Any earlier run still marked ``running`` did not end cleanly: it becomes ``crashed``.
        """
        run_id = uuid.uuid4().hex
        started = time.time_ns() if started_at_ns is None else started_at_ns
        with self._reader() as cur:
            cur.execute("BEGIN TRANSACTION")
            cur.execute("UPDATE runs SET how = ? WHERE how = ?", [CRASHED, RUNNING])
            cur.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?)",
                [run_id, started, RUNNING, config_hash, os.getpid()],
            )
            cur.execute("COMMIT")
        return run_id

    def end_run(self, run_id: str, how: str = CLEAN, *, ended_at_ns: int | None = None) -> None:
        """Record how run ``run_id`` ended (e.g. ``clean``, ``halted``, ``crashed``)."""
        ended = time.time_ns() if ended_at_ns is None else ended_at_ns
        with self._reader() as cur:
            row = cur.execute(
                "UPDATE runs SET how = ?, ended_at = ? WHERE run_id = ? RETURNING run_id",
                [how, ended, run_id],
            ).fetchall()
        if not row:
            raise PersistenceError(f"run_id {run_id!r} is not a recorded run")

    def runs(self) -> list[RunRecord]:
        """Every recorded run, oldest first."""
        with self._reader() as cur:
            rows = cur.execute(
                "SELECT run_id, started_at, ended_at, how, config_hash, pid FROM runs "
                "ORDER BY started_at, run_id"
            ).fetchall()
        return [RunRecord(*r) for r in rows]
