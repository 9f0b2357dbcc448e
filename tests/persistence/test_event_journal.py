"""The event log's write-ahead journal: durable before DuckDB, torn writes cut off, bounded."""

from __future__ import annotations

import json
import os
import resource
import signal
import time
import zlib
from pathlib import Path

import duckdb
import pytest

from persistence import EventLog
from persistence.codec import EventCodec
from persistence.event_journal import EventJournal
from tests.persistence.builders import fill, tick


def _row(seq: int) -> tuple[object, ...]:
    return (seq, f"e{seq}", seq, seq, "md.tick.AAPL", "tick", 1, False, '{"x":1}', None, None)


def test_an_acknowledged_event_is_in_the_journal_before_duckdb_has_it(db_path: Path) -> None:
    with EventLog(db_path, flush_interval_s=30.0) as log:
        stored = log.append(fill(1), wait=True)
        assert stored is not None and log.committed_seq == stored.seq
        assert [r[1] for r in EventJournal(str(db_path) + ".journal").read()] == [stored.event_id]
        assert log.stats()["stored_seq"] == 0  # DuckDB does not have it yet
        assert [e.event_id for e in log.read()] == [stored.event_id]  # a read moves it in
        assert log.stats()["stored_seq"] == stored.seq


def test_rows_move_into_duckdb_within_the_flush_interval(db_path: Path) -> None:
    with EventLog(db_path, flush_interval_s=0.05) as log:
        for i in range(5):
            log.append(fill(i), wait=True)
        deadline = time.monotonic() + 5.0  # far beyond the interval: the writer's own timer
        while log.stats()["stored_seq"] < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.stats()["stored_seq"] == 5


def test_a_clean_close_leaves_an_empty_journal_and_nothing_to_put_back(db_path: Path) -> None:
    with EventLog(db_path, flush_interval_s=30.0) as log:
        for i in range(20):
            log.append(tick(i))
        log.append(fill(1), wait=True)
    assert Path(str(db_path) + ".journal").stat().st_size == 0
    with EventLog(db_path) as log:
        assert log.repaired == 0
        assert [e.seq for e in log.read()] == list(range(1, 22))


def test_a_running_log_empties_its_journal_past_the_size_limit(db_path: Path) -> None:
    journal = Path(str(db_path) + ".journal")
    with EventLog(db_path, journal_max_bytes=20_000, flush_interval_s=0.01) as log:
        sizes = []
        for i in range(400):
            log.append(tick(i))
            if i % 20 == 19:
                log.flush()
                sizes.append(journal.stat().st_size)
        assert max(sizes) < 2 * 20_000 + 10_000  # emptied again and again, never unbounded
        assert min(sizes) < 20_000
        assert [e.seq for e in log.read()] == list(range(1, 401))
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == 400


def test_a_failed_write_is_cut_off_before_the_next_one(tmp_path: Path) -> None:
    """A write that fails half-way (a real EFBIG from RLIMIT_FSIZE) leaves a torn line; the
    next append cuts it off, so it never corrupts the rows after it."""
    journal = EventJournal(tmp_path / "j.journal").open()
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        journal.append([_row(1)])
        good = journal.size
        resource.setrlimit(resource.RLIMIT_FSIZE, (good + 40, old_limit[1]))
        with pytest.raises(OSError):
            journal.append([_row(2), _row(3)])
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        assert os.path.getsize(journal.path) == good + 40  # the torn part is on disk
        journal.append([_row(4)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
        journal.close()
    assert [r[0] for r in journal.read()] == [1, 4]


def test_one_append_is_one_line_and_a_damaged_line_loses_only_its_own_rows(
    tmp_path: Path,
) -> None:
    journal = EventJournal(tmp_path / "j.journal").open()
    journal.append([_row(1), _row(2)])
    journal.append([_row(3)])
    journal.append([_row(4), _row(5)])
    journal.close()
    lines = journal.path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 3
    damaged = lines[1].replace(b"md.tick", b"md.tock")
    journal.path.write_bytes(b"\n".join([lines[0], damaged, lines[2]]) + b"\n")
    assert [r[0] for r in journal.read()] == [1, 2, 4, 5]


def test_the_critical_only_journal_of_earlier_versions_is_put_back_and_removed(
    db_path: Path,
) -> None:
    with EventLog(db_path) as log:
        log.append(fill(1), wait=True)
    lost = fill(2, event_id="e2")
    codec = EventCodec().for_class(type(lost))
    row = [2, "e2", lost.ts_event, lost.ts_init, lost.topic, codec.type_name, 1, True]
    text = json.dumps([*row, codec.encode(lost), None, None], separators=(",", ":"))
    # committed by an older version (its format: one row per line), lost by its database
    Path(str(db_path) + ".critical").write_text(f"{zlib.crc32(text.encode()):08x} {text}\n")
    with EventLog(db_path) as log:
        assert log.repaired == 1
        assert [e.event_id for e in log.read()][-1] == "e2"
    assert not Path(str(db_path) + ".critical").exists()
