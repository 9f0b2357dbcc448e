"""A flipped byte in DuckDB's write-ahead log loses no acknowledged critical event."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from persistence import EventLog, full_replay, restore
from tests.persistence.builders import fill
from tests.persistence.crash_parent import run_python


def _crashed_log(
    tmp_path: Path, count: int = 60, where: str = "stored"
) -> tuple[Path, list[tuple[int, str]]]:
    db = tmp_path / "events.duckdb"
    out = run_python(
        "-m", "tests.persistence.wal_child", str(db), str(count), where, check=True
    ).stdout
    acked = [(int(seq), event_id) for seq, event_id in (line.split() for line in out.splitlines())]
    assert len(acked) == count
    assert Path(str(db) + ".wal").exists() == (where == "stored")
    return db, acked


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.3, 0.5, 0.9])
def test_every_acknowledged_critical_event_survives_a_flipped_wal_byte(
    tmp_path: Path, where: float
) -> None:
    db, acked = _crashed_log(tmp_path)
    wal = Path(str(db) + ".wal")
    _flip(wal, int(wal.stat().st_size * where))
    with EventLog(db) as log:
        stored = {e.event_id: e.seq for e in log.read(types=["trade_executed"])}
        assert {event_id: seq for seq, event_id in acked} == stored  # same ids, same seqs
        assert log.repaired > 0  # they came back from the event journal
        assert log.healthy
        assert restore(log).state == full_replay(log)
        nxt = log.append(fill(10**6, side="sell"), wait=True)
        assert nxt is not None and nxt.seq > max(seq for seq, _ in acked)


def test_duckdb_alone_loses_or_refuses_them(tmp_path: Path) -> None:
    """Why the journal exists: without it the same damage loses acknowledged events."""
    db, acked = _crashed_log(tmp_path)
    wal = Path(str(db) + ".wal")
    _flip(wal, int(wal.stat().st_size * 0.5))
    try:
        with duckdb.connect(str(db)) as con:
            count = con.execute("SELECT count(*) FROM events WHERE critical").fetchall()[0][0]
    except duckdb.Error:
        return  # refused: every acknowledged event would be out of reach
    assert count < len(acked)


def test_an_undamaged_crash_restores_nothing_from_the_journal(tmp_path: Path) -> None:
    db, acked = _crashed_log(tmp_path, count=20)
    with EventLog(db) as log:
        assert log.repaired == 0
        assert len(log.read(types=["trade_executed"])) == len(acked)


def test_a_crash_before_duckdb_got_the_rows_puts_them_all_back(tmp_path: Path) -> None:
    """Acknowledged means journaled: rows DuckDB never got come back from the journal alone,
    ticks included, with their seqs, and the journal is empty once they are in."""
    db, acked = _crashed_log(tmp_path, count=20, where="journal")
    journal = Path(str(db) + ".journal")
    assert journal.stat().st_size > 0
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == 0
    with EventLog(db) as log:
        assert log.repaired == 2 * len(acked)  # a tick before every fill
        stored = log.read()
        assert [e.seq for e in stored] == list(range(1, 2 * len(acked) + 1))
        fills = {e.event_id: e.seq for e in stored if e.type == "trade_executed"}
        assert fills == {event_id: seq for seq, event_id in acked}
        assert restore(log).state == full_replay(log)
        assert journal.stat().st_size == 0
