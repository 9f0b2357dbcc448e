"""The recorder contract run against both event logs: the DuckDB file and PostgreSQL.

The tests themselves are in :mod:`tests.persistence.recorder_contract` (the recorder half) and
:mod:`tests.persistence.contract` (the journal half and the hooks); each class here only says
how to open its backend and how to reach its rows behind the log's back. Both declare every
capability; they differ in one documented way, :attr:`old_duplicate_stored_again`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import psycopg
import pytest

from persistence import EventLog
from persistence.pg import PostgresEventLog
from tests.persistence.crash_parent import start_crash_child
from tests.persistence.recorder_contract import RecorderContract


class TestDuckDBRecorder(RecorderContract):
    """The DuckDB event log (``persistence.EventLog``) on a file in a temporary folder.

    A non-critical duplicate older than ``dedup_window`` is stored again: the file has no
    index on event_id (DuckDB keeps indexes wholly in memory, so one over every id grew
    without bound: docs/reliability.md, Soak).
    """

    old_duplicate_stored_again = True
    fast_options: ClassVar[dict[str, Any]] = {"flush_interval_s": 0.01}

    def setup_store(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.path = str(tmp_path / "events.duckdb")

    def make(self, **options: Any) -> EventLog:
        return EventLog(self.path, **options)

    def _execute(self, sql: str, params: list[Any] | None = None) -> None:
        con = duckdb.connect(self.path)
        try:
            con.execute(sql, params)
        finally:
            con.close()

    def corrupt_snapshot(self, snapshot_id: int) -> None:
        self._execute(
            "UPDATE snapshots SET state = json_merge_patch(state, '{\"pnl\": null}') WHERE id = ?",
            [snapshot_id],
        )

    def tamper_event(self, seq: int) -> None:
        self._execute("UPDATE events SET payload = '{\"qty\": 1000}' WHERE seq = ?", [seq])

    def start_crash_child(self, tag: str) -> subprocess.Popen[str]:
        return start_crash_child(self.path, tag)


class TestPostgresRecorder(RecorderContract):
    """The PostgreSQL event log (``persistence.pg.PostgresEventLog``, stream ``default``) on a
    fresh database of the session's private server (``pg_dsn``, testkit/services/postgres.py).

    A non-critical duplicate older than ``dedup_window`` is dropped by the writer, which finds
    it in the unique index on disk; its seq stays a hole, which the hash chain passes over.
    """

    old_duplicate_stored_again = False
    fast_options: ClassVar[dict[str, Any]] = {"flush_interval_s": 0.01}

    def setup_store(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.dsn: str = request.getfixturevalue("pg_dsn")

    def make(self, **options: Any) -> PostgresEventLog:
        return PostgresEventLog(self.dsn, **options)

    def corrupt_snapshot(self, snapshot_id: int) -> None:
        with psycopg.connect(self.dsn) as pg:
            pg.execute(
                "UPDATE snapshots SET state = %s WHERE id = %s", ['{"pnl": null}', snapshot_id]
            )

    def tamper_event(self, seq: int) -> None:
        with psycopg.connect(self.dsn) as pg:
            pg.execute(
                "UPDATE events SET payload = '{\"qty\": 1000}' "
                "WHERE seq = %s AND stream = 'default'",
                [seq],
            )

    def start_crash_child(self, tag: str) -> subprocess.Popen[str]:
        return start_crash_child(self.dsn, tag)
