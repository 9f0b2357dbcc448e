"""Snapshots and run records of one stream in PostgreSQL (the same semantics as the DuckDB
log's): checksummed snapshots, newest usable first; runs marked ``crashed`` when a newer run
starts while they still say ``running``. Writes call the log's fence before COMMIT.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from persistence.codec import dumps
from persistence.event_log import CLEAN, CRASHED, RUNNING
from persistence.pg.connect import ConnectionPool
from persistence.records import RunRecord, SkippedSnapshot, Snapshot, SnapshotLookup
from streams.errors import EventError, PersistenceError

log = logging.getLogger(__name__)

Fence = Callable[[psycopg.Connection], None]


def checksum(text: str) -> str:
    """The sha256 hex digest of ``text`` (UTF-8), as stored with each snapshot."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PgStored:
    """Snapshots and runs of :class:`~persistence.pg.log.PostgresEventLog` (a mixin)."""

    stream: str
    path: str
    _pool: ConnectionPool
    _fence: Fence | None

    def flush(self) -> int:
        raise NotImplementedError

    def _write_txn(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """``fn`` in one transaction that calls the fence before committing."""

        def run(con: psycopg.Connection) -> Any:
            with con.transaction():
                result = fn(con)
                if self._fence is not None:
                    self._fence(con)
            return result

        return self._pool.run(run)

    # -- snapshots ---------------------------------------------------------------------------
    def save_snapshot(
        self,
        seq: int,
        schema_version: int,
        state: dict[str, Any],
        *,
        created_at_ns: int | None = None,
    ) -> int:
        """Store ``state`` as covering every event up to ``seq``; return the snapshot id.

        Flushes first: a snapshot may only cover committed events (PersistenceError if ``seq``
        is beyond them). The state is stored as JSON text with its sha256 checksum.
        """
        committed = self.flush()
        if seq > committed or seq < 0:
            raise PersistenceError(
                f"snapshot seq {seq} is not covered by the log (last committed {committed})"
            )
        try:
            text = dumps(state, "snapshot state")
        except EventError as exc:
            raise PersistenceError(str(exc)) from exc
        created = time.time_ns() if created_at_ns is None else created_at_ns

        def insert(con: psycopg.Connection) -> int:
            row = con.execute(
                "INSERT INTO snapshots (stream, seq, created_at, schema_version, state, "
                "checksum) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                [self.stream, seq, created, schema_version, text, checksum(text)],
            ).fetchone()
            assert row is not None
            return int(row[0])

        snapshot_id: int = self._write_txn(insert)
        return snapshot_id

    def iter_snapshots(self, max_seq: int | None = None) -> Iterator[Snapshot | SkippedSnapshot]:
        """Snapshots newest first (by seq, then id); invalid ones come as SkippedSnapshot.

        A snapshot is invalid if its checksum fails, its JSON does not decode to an object, or
        it covers seqs beyond the stored events.
        """
        sql = "SELECT id, seq FROM snapshots WHERE stream = %s"
        params: list[Any] = [self.stream]
        if max_seq is not None:
            sql += " AND seq <= %s"
            params.append(max_seq)

        def heads(con: psycopg.Connection) -> tuple[list[tuple[Any, ...]], int]:
            rows = con.execute(sql + " ORDER BY seq DESC, id DESC", params).fetchall()
            top = con.execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE stream = %s", [self.stream]
            ).fetchone()
            return rows, int(top[0]) if top else 0

        rows, stored_max = self._pool.run(heads)
        for snapshot_id, seq in rows:
            if seq > stored_max:
                yield SkippedSnapshot(
                    snapshot_id, seq, f"covers seq {seq} beyond the last stored seq {stored_max}"
                )
                continue

            def body(con: psycopg.Connection, sid: int = snapshot_id) -> tuple[Any, ...] | None:
                return con.execute(
                    "SELECT created_at, schema_version, state::text, checksum FROM snapshots "
                    "WHERE id = %s",
                    [sid],
                ).fetchone()

            found = self._pool.run(body)
            if found is None:
                continue
            created_at, version, text, digest = found
            if checksum(text) != digest:
                yield SkippedSnapshot(snapshot_id, seq, "checksum mismatch")
                continue
            try:
                state = json.loads(text)
            except ValueError as exc:
                yield SkippedSnapshot(snapshot_id, seq, f"state does not decode: {exc}")
                continue
            if not isinstance(state, dict):
                yield SkippedSnapshot(snapshot_id, seq, "state is not a JSON object")
                continue
            yield Snapshot(snapshot_id, seq, created_at, version, state, digest)

    def latest_snapshot(self, max_seq: int | None = None) -> SnapshotLookup:
        """The newest valid snapshot with ``seq <= max_seq`` and the newer ones skipped."""
        skipped: list[SkippedSnapshot] = []
        for item in self.iter_snapshots(max_seq):
            if isinstance(item, SkippedSnapshot):
                log.warning("event log %s: skipping snapshot %s", self.path, item)
                skipped.append(item)
                continue
            return SnapshotLookup(item, tuple(skipped))
        return SnapshotLookup(None, tuple(skipped))

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
