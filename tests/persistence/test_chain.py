"""The hash-chained event log (persistence/chain.py) on real DuckDB files: the canonical bytes
as specified, every kind of tampering found at the first bad seq (rows edited with SQL), the
chain surviving a crash through the journal, and files written before the chain upgraded at
open. The contract for both backends is in test_recorder_contract.py."""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from persistence import EventLog, full_replay
from persistence.chain import (
    GENESIS,
    GENESIS_HEX,
    ChainCheck,
    canonical,
    journal_line,
    link,
    link_rows,
)
from persistence.codec import EVENT_COLUMNS
from persistence.duckdb_file import UNCHAINED_EVENTS_COLUMNS
from persistence.duckdb_repair import add_hash_chain
from persistence.event_journal import read_rows
from state import model
from streams.errors import PersistenceError
from streams.events import Event
from tests.persistence.builders import every_event_type, fill, tick
from tests.persistence.crash_parent import run_python


# -- the canonical bytes ------------------------------------------------------------------------
def test_the_documented_example_and_its_hash() -> None:
    row = (1, "e1", 10, 11, "t.x", "tick", 1, False, '{"a":1}', None, None)
    text = b'[1,"e1",10,11,"t.x","tick",1,false,"{\\"a\\":1}",null,null]'
    assert canonical(row) == text
    assert link(GENESIS, row) == hashlib.sha256(bytes(32) + text).digest()
    assert link(GENESIS, row).hex() == (
        "43f38dd251c0a8b8736c8ab83898b89c6343581e8d78a14795b288dd68a137e0"
    )


@pytest.mark.parametrize(
    "text",
    ["plain", 'quo"te\\back/slash', "tab\tnl\ncr\r\x00\x1f\x7f", "é中文", "emoji 😀", ""],
)
def test_canonical_bytes_are_json_dumps_of_the_fields(text: str) -> None:
    row = (2**62, text, -5, 0, f"t.{text}", text, 3, True, json.dumps({"k": text}), text, None)
    assert canonical(row) == json.dumps(list(row), separators=(",", ":")).encode()
    assert canonical(row).isascii()


def test_the_journal_line_holds_the_rows_and_their_hashes() -> None:
    rows = [(i, f"e{i}", i, i, "t", "tick", 1, i % 2 == 0, '{"x":1}', None, "c") for i in (1, 2, 3)]
    texts, digests, head = link_rows(GENESIS, rows)
    assert head == digests[-1] == link(link(link(GENESIS, rows[0]), rows[1]), rows[2])
    line = json.loads(journal_line(texts, digests))
    assert line["rows"] == [list(r) for r in rows]
    assert line["chain"] == "".join(d.hex() for d in digests)


# -- helpers on real files ----------------------------------------------------------------------
def _history() -> list[Event]:
    return [*every_event_type(), *(tick(i) for i in range(40)), fill(99)]


def _write(path: Path, events: list[Event] | None = None, snapshot_at: int | None = None) -> str:
    """A log holding ``events`` (default: ``_history()``), with a snapshot at
    ``snapshot_at``; returns the chain head."""
    with EventLog(path) as log:
        for e in events or _history():
            log.append(e)
        log.flush()
        if snapshot_at is not None:
            state = full_replay(log, upto_seq=snapshot_at)
            log.save_snapshot(snapshot_at, model.SCHEMA_VERSION, model.state_to_dict(state))
        report = log.verify_chain()
    assert report.ok, report
    return report.head


def _sql(path: Path, *statements: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


def _verify(path: Path, batch_size: int = 50_000) -> Any:
    with EventLog(path) as log:
        return log.verify_chain(batch_size=batch_size)


def _rows(path: Path, columns: str = "*") -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT {columns} FROM events ORDER BY seq").fetchall()
    finally:
        con.close()


# -- tampering on a real file, edited with SQL --------------------------------------------------
def test_an_intact_log_verifies_in_batches_up_to_its_head(db_path: Path) -> None:
    head = _write(db_path, snapshot_at=20)
    n = len(_history())
    for batch in (1, 7, 50_000):
        report = _verify(db_path, batch)
        assert report.ok and report.events == report.last_seq == n
        assert report.head == head and report.snapshots_checked == 1
        assert report.first_bad_seq is None and report.reason is None
    stored = _rows(db_path, "seq, chain_hash")
    assert stored[-1][1].hex() == head and all(len(h) == 32 for _, h in stored)
    with EventLog(db_path) as log:
        batches = list(log.iter_chain_rows(batch_size=10))
    assert [len(b) for b in batches] == [10] * (n // 10) + ([n % 10] if n % 10 else [])
    assert [r[0] for b in batches for r in b] == list(range(1, n + 1))


@pytest.mark.parametrize(
    ("statements", "first_bad", "why"),
    [
        pytest.param(
            ["UPDATE events SET payload = '{\"qty\": 1000000}' WHERE seq = 30"],
            30,
            "does not match",
            id="changed payload",
        ),
        pytest.param(
            ["UPDATE events SET ts_event = ts_event + 1 WHERE seq = 12"],
            12,
            "does not match",
            id="changed timestamp",
        ),
        pytest.param(
            ["UPDATE events SET causation_id = 'forged' WHERE seq = 5"],
            5,
            "does not match",
            id="changed causation id",
        ),
        pytest.param(["DELETE FROM events WHERE seq = 25"], 25, "25 missing", id="deleted row"),
        pytest.param(
            ["DELETE FROM events WHERE seq BETWEEN 25 AND 27"],
            25,
            "25..27 missing",
            id="deleted rows",
        ),
        pytest.param(["DELETE FROM events WHERE seq = 1"], 1, "1 missing", id="deleted first"),
        pytest.param(
            [
                "UPDATE events SET event_id = o.event_id, ts_event = o.ts_event, "
                "ts_init = o.ts_init, topic = o.topic, type = o.type, payload = o.payload, "
                "critical = o.critical, chain_hash = o.chain_hash "
                "FROM (SELECT * FROM events WHERE seq IN (40, 41)) AS o "
                "WHERE events.seq IN (40, 41) AND events.seq + o.seq = 81"
            ],
            40,
            "does not match",
            id="two rows swapped",
        ),
        pytest.param(
            [
                "INSERT INTO events SELECT seq + 1, 'forged', ts_event, ts_init, topic, type, "
                "schema_version, critical, payload, correlation_id, causation_id, chain_hash "
                "FROM events WHERE seq = (SELECT max(seq) FROM events)"
            ],
            len(_history()) + 1,
            "does not match",
            id="row inserted at the end",
        ),
        pytest.param(
            [
                "CREATE TABLE moved AS SELECT * REPLACE "
                "(CASE WHEN seq >= 20 THEN seq + 1 ELSE seq END AS seq) FROM events",
                "INSERT INTO moved SELECT 20, 'forged', ts_event, ts_init, topic, type, "
                "schema_version, critical, payload, correlation_id, causation_id, chain_hash "
                "FROM events WHERE seq = 19",
                "DELETE FROM events",
                "INSERT INTO events SELECT * FROM moved ORDER BY seq",
                "DROP TABLE moved",
            ],
            20,
            "does not match",
            id="row inserted in the middle",
        ),
        pytest.param(
            ["UPDATE events SET chain_hash = NULL WHERE seq = 33"],
            33,
            "no chain hash",
            id="hash removed",
        ),
        pytest.param(
            ["UPDATE events SET chain_hash = sha256('x')::BLOB WHERE seq = 33"],
            33,
            "does not match",
            id="hash replaced",
        ),
    ],
)
def test_every_kind_of_tampering_is_found_at_the_first_bad_seq(
    db_path: Path, statements: list[str], first_bad: int, why: str
) -> None:
    _write(db_path)
    _sql(db_path, *statements)

    report = _verify(db_path, batch_size=7)

    assert not report.ok
    assert report.first_bad_seq == first_bad, report
    assert why in (report.reason or "")
    assert report.last_seq == report.events == first_bad - 1  # everything before it verifies


def test_a_log_rewritten_with_fresh_hashes_is_caught_by_a_snapshot_head(db_path: Path) -> None:
    """Whoever can write the file can recompute every hash after a change; the chain head a
    snapshot recorded (and any head kept elsewhere) then no longer matches."""
    _write(db_path, snapshot_at=30)
    _sql(db_path, "UPDATE events SET payload = '{\"qty\": 7}' WHERE seq = 10")
    rows = _rows(db_path, ", ".join(EVENT_COLUMNS))
    _, digests, _ = link_rows(GENESIS, rows)
    con = duckdb.connect(str(db_path))
    try:
        for row, digest in zip(rows, digests, strict=True):
            con.execute("UPDATE events SET chain_hash = ? WHERE seq = ?", [digest, row[0]])
    finally:
        con.close()

    report = _verify(db_path)

    assert not report.ok and report.first_bad_seq == 1
    assert "snapshot 1 recorded another chain head at seq 30" in (report.reason or "")


def test_deleted_events_after_the_last_snapshot_are_found_by_its_head(db_path: Path) -> None:
    n = len(_history())
    _write(db_path, snapshot_at=n)
    _sql(db_path, f"DELETE FROM events WHERE seq > {n - 3}")

    report = _verify(db_path)

    assert not report.ok and report.first_bad_seq == n - 2
    assert "deleted" in (report.reason or "")


def test_a_changed_snapshot_head_is_reported(db_path: Path) -> None:
    _write(db_path, snapshot_at=15)
    _sql(db_path, f"UPDATE snapshots SET chain_head = '{GENESIS_HEX}'")
    report = _verify(db_path)
    assert not report.ok and report.first_bad_seq == 1 and report.events == 15


def test_the_check_reports_rows_out_of_order() -> None:
    rows = [(i, f"e{i}", i, i, "t", "tick", 1, False, "{}", None, None) for i in (1, 2)]
    _, digests, _ = link_rows(GENESIS, rows)
    check = ChainCheck()
    stored = [(*r, d) for r, d in zip(rows, digests, strict=True)]
    assert check.feed(stored)
    assert not check.feed([stored[0]])
    report = check.finish()
    assert report.first_bad_seq == 1 and "out of order" in (report.reason or "")


# -- restarts and crashes -----------------------------------------------------------------------
_CRASH = """
import os, sys
from persistence import EventLog
from tests.persistence.builders import fill, tick
log = EventLog(sys.argv[1], flush_interval_s=60.0, batch_size=1_000_000).open()
for i in range(int(sys.argv[2]), int(sys.argv[2]) + 20):
    log.append(tick(i))
    log.append(fill(i), wait=True)
os._exit(0)  # no close: the rows are in the journal only
"""


def test_a_crash_recovery_restores_the_hashes_from_the_journal(db_path: Path) -> None:
    _write(db_path, [tick(-i) for i in range(1, 6)])
    child = run_python("-c", _CRASH, str(db_path), "0")
    assert child.returncode == 0, child.stderr
    journaled = {r[0]: r[-1] for r in read_rows(str(db_path) + ".journal")}
    assert len(journaled) == 40 and all(len(h) == 64 for h in journaled.values())

    with EventLog(db_path) as log:
        assert log.repaired == 40
        report = log.verify_chain()
        nxt = log.append(fill(1000), wait=True)
        assert nxt is not None and log.verify_chain().ok
    assert report.ok and report.last_seq == 45
    stored = {seq: h.hex() for seq, h in _rows(db_path, "seq, chain_hash")}
    assert all(stored[seq] == h for seq, h in journaled.items())


def test_rows_journaled_before_the_chain_are_chained_when_put_back(db_path: Path) -> None:
    head = _write(db_path, [tick(i) for i in range(5)])
    rows = [
        [seq, f"old-{seq}", seq, seq, "data.ticks.aapl", "tick", 1, False, '{"x":1}', None, None]
        for seq in (6, 7)
    ]
    with open(str(db_path) + ".journal", "w", encoding="utf-8") as journal:
        text = json.dumps(rows, separators=(",", ":"))  # the line format before the chain
        journal.write(f"{zlib.crc32(text.encode()):08x} {text}\n")
    with EventLog(db_path) as log:
        assert log.repaired == 2
        assert log.verify_chain().ok
    expected = link(link(bytes.fromhex(head), rows[0]), rows[1])
    assert _rows(db_path, "chain_hash")[-1][0] == expected


# -- files written before the chain --------------------------------------------------------------
def _unchained_copy(source: Path, target: Path) -> None:
    """``target``: ``source``'s events and snapshots as a file written before the chain (no
    chain_hash, no chain_head), written with the old schema directly."""
    con = duckdb.connect(str(target))
    try:
        con.execute("CREATE TABLE events " + UNCHAINED_EVENTS_COLUMNS)
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        columns = ", ".join(EVENT_COLUMNS)
        con.execute(f"INSERT INTO events SELECT {columns} FROM src.events ORDER BY seq")
        con.execute(
            "CREATE TABLE snapshots AS SELECT id, seq, created_at, schema_version, state, "
            "checksum FROM src.snapshots"
        )
        con.execute("CREATE TABLE runs AS SELECT * FROM src.runs")
        con.execute("DETACH src")
    finally:
        con.close()


def test_a_file_without_the_chain_is_upgraded_once_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live, old = tmp_path / "live.duckdb", tmp_path / "old.duckdb"
    n = len(_history())
    head = _write(live, snapshot_at=20)
    _unchained_copy(live, old)

    with caplog.at_level(logging.WARNING, logger="persistence.event_log"), EventLog(old) as log:
        assert f"added the hash chain: {n} row(s) hashed in seq order" in caplog.text
        assert head in caplog.text and "1 snapshot(s) given their chain head" in caplog.text
        report = log.verify_chain()
        snapshot = log.latest_snapshot().snapshot
        nxt = log.append(tick(1000), wait=True)
        assert nxt is not None and nxt.seq == n + 1
        assert log.verify_chain().ok
    assert report.ok and report.head == head and report.snapshots_checked == 1
    assert snapshot is not None and snapshot.chain_head == _rows(live, "chain_hash")[19][0].hex()
    # The same rows give the same hashes, whether written live or upgraded.
    assert _rows(old, "chain_hash")[:n] == _rows(live, "chain_hash")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="persistence.event_log"), EventLog(old) as log:
        assert "hash chain" not in caplog.text  # upgraded once
        assert log.verify_chain().ok


def test_the_upgrade_reads_in_batches_and_a_failure_leaves_the_file_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, old = tmp_path / "live.duckdb", tmp_path / "old.duckdb"
    head = _write(live)
    _unchained_copy(live, old)
    before = _rows(old)

    import persistence.duckdb_repair as repair

    calls: list[int] = []
    real = repair.link_rows

    def failing(previous: bytes, rows: list[Any]) -> Any:
        calls.append(len(rows))
        if len(calls) == 3:
            raise duckdb.Error("injected failure")
        return real(previous, rows)

    monkeypatch.setattr(repair, "link_rows", failing)
    con = duckdb.connect(str(old))
    try:
        with pytest.raises(PersistenceError, match="the file is unchanged: injected failure"):
            add_hash_chain(con, str(old), logging.getLogger("test"), batch_size=10)
        assert calls == [10, 10, 10]
    finally:
        con.close()
    assert _rows(old) == before

    monkeypatch.setattr(repair, "link_rows", real)
    con = duckdb.connect(str(old))
    try:
        hashed = add_hash_chain(con, str(old), logging.getLogger("test"), batch_size=10)
    finally:
        con.close()
    assert hashed == len(before)
    assert _verify(old).head == head
