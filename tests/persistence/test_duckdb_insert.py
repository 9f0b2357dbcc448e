"""The two insert paths of the DuckDB event log store the same rows, each as one transaction."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from persistence import duckdb_file
from persistence.chain import STORED_COLUMNS
from persistence.codec import EVENT_COLUMNS


def _rows(first_seq: int, n: int) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(n):
        seq = first_seq + i
        payload = json.dumps({"symbol": "ÄPL", "qty": 1.5 * i, "note": "x'; DROP TABLE events;--"})
        rows.append(
            (
                seq,
                f"evt-{seq}",
                1_700_000_000_000_000_000 + seq,
                2**62 + seq,
                "fills.paper",
                "trade_executed",
                1,
                i % 2 == 0,
                payload,
                None if i % 3 else f"corr-{seq}",
                f"cause-{seq}" if i % 4 else None,
                hashlib.sha256(b"%d" % seq).digest(),  # a chain hash (32 bytes)
            )
        )
    return rows


def _cursor(path: Path) -> Any:
    con = duckdb.connect(str(path))
    for ddl in duckdb_file.DDL:
        con.execute(ddl)
    return con


def _stored(con: Any, last: int) -> list[tuple[Any, ...]]:
    sql = f"SELECT {', '.join(STORED_COLUMNS)} FROM events WHERE seq <= ? ORDER BY seq"
    return con.execute(sql, [last]).fetchall()


@pytest.mark.parametrize("through_appender", [False, True])
@pytest.mark.parametrize("n", [1, 2, duckdb_file.SMALL_BATCH_ROWS])
def test_a_small_batch_stores_what_the_arrow_path_stores(
    tmp_path: Path, n: int, through_appender: bool
) -> None:
    rows = _rows(1, n)
    small, arrow = _cursor(tmp_path / "small.duckdb"), _cursor(tmp_path / "arrow.duckdb")
    appender = duckdb_file.events_appender(small) if through_appender else None
    try:
        duckdb_file.insert(small, rows, appender)
        # The same rows, padded past the threshold so that they go in as one Arrow table.
        duckdb_file.insert(arrow, rows + _rows(n + 1, duckdb_file.SMALL_BATCH_ROWS + 1 - n))
        got = _stored(small, n)
        assert len(got) == n
        assert got == _stored(arrow, n)
        assert got == [tuple(row) for row in rows]
    finally:
        small.close()
        arrow.close()
    payload = json.loads(got[0][EVENT_COLUMNS.index("payload")])
    assert payload["symbol"] == "ÄPL"


@pytest.mark.parametrize("n", [2, duckdb_file.SMALL_BATCH_ROWS + 4])
def test_rows_with_their_chain_apart_store_what_whole_rows_store(tmp_path: Path, n: int) -> None:
    rows = _rows(1, n)
    whole, apart = _cursor(tmp_path / "whole.duckdb"), _cursor(tmp_path / "apart.duckdb")
    try:
        duckdb_file.insert(whole, rows)
        duckdb_file.insert(apart, [r[:-1] for r in rows], chain=[r[-1] for r in rows])
        assert _stored(apart, n) == _stored(whole, n) == [tuple(r) for r in rows]
    finally:
        whole.close()
        apart.close()


def test_a_small_batch_is_one_transaction(tmp_path: Path) -> None:
    con = _cursor(tmp_path / "events.duckdb")
    try:
        duckdb_file.insert(con, _rows(1, 1))
        clash = _rows(2, 3)
        clash[2] = (1, *clash[2][1:])  # seq 1 again: the primary key refuses the whole batch
        with pytest.raises(duckdb.ConstraintException):
            duckdb_file.insert(con, clash)
        assert [r[0] for r in _stored(con, 100)] == [1]
    finally:
        con.close()


def test_a_failed_appender_flush_stores_nothing_and_leaves_the_appender_clean(
    tmp_path: Path,
) -> None:
    # The writer retries a failed batch with the same rows: rows of the failed flush must not
    # stay buffered in the appender and be stored twice (or beside the next batch).
    con = _cursor(tmp_path / "events.duckdb")
    appender = duckdb_file.events_appender(con)
    assert appender is not None, "DuckDB 2 has an appender"
    try:
        duckdb_file.insert(con, _rows(1, 1), appender)
        clash = _rows(2, 3)
        clash[2] = (1, *clash[2][1:])  # seq 1 again: the primary key refuses the whole batch
        with pytest.raises(duckdb.ConstraintException):
            duckdb_file.insert(con, clash, appender)
        assert [r[0] for r in _stored(con, 100)] == [1]
        duckdb_file.insert(con, _rows(2, 2), appender)
        assert [r[0] for r in _stored(con, 100)] == [1, 2, 3]
    finally:
        con.close()


def test_the_event_log_inserts_through_one_appender_per_writer_cursor(tmp_path: Path) -> None:
    from persistence import EventLog
    from streams.events import TradeExecuted
    from tests.persistence.builders import fill

    log = EventLog(str(tmp_path / "log.duckdb")).open()
    try:
        for i in range(3):
            log.append(fill(i), wait=True)
            log.flush()  # moves it into DuckDB: one small insert
        first = log._appender
        assert first is not None and first[1] is not None
        log.append(fill(9, side="sell"), wait=True)
        log.flush()
        assert log._appender is first, "the appender is kept between commits"
        assert [e.fill_id for e in log.read() if isinstance(e, TradeExecuted)] == [
            "f0",
            "f1",
            "f2",
            "f9",
        ]
    finally:
        log.close()
