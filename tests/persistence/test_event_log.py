"""The DuckDB event log: round trips, seq order, idempotence, durability, reads, locking."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import duckdb
import pytest

from persistence import EventLog, duckdb_file
from persistence.codec import EVENT_COLUMNS, EventCodec
from state.journal import Journal
from streams.errors import EventError, PersistenceError
from streams.events import Event, TickReceived, event_types
from tests.persistence.builders import T0, every_event_type, fill, tick
from tests.persistence.crash_parent import run_python


def _stored_seqs(path: Path) -> list[int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
    finally:
        con.close()


def test_event_log_is_a_journal(event_log: EventLog) -> None:
    assert isinstance(event_log, Journal)


def test_every_event_type_round_trips_losslessly(event_log: EventLog) -> None:
    events = every_event_type()
    assert {e.type for e in events} == set(event_types()) - {"event"}

    stored = [event_log.append(e) for e in events]
    read = event_log.read()

    assert read == stored
    assert [e.seq for e in read] == list(range(1, len(events) + 1))
    for original, back in zip(events, read, strict=True):
        assert back == original.with_seq(back.seq)
        assert type(back) is type(original)


def test_fast_codec_matches_the_generic_event_methods() -> None:
    codec = EventCodec()
    import json

    for event in every_event_type():
        type_codec = codec.for_class(type(event))
        assert json.loads(type_codec.encode(event)) == event.payload()
        assert type_codec.clone(event, 42) == event.with_seq(42)


def test_payload_that_is_not_json_is_refused_before_a_seq_is_taken(event_log: EventLog) -> None:
    with pytest.raises(EventError, match="tick"):
        event_log.append(TickReceived(symbol="AAPL", bid=float("nan")))
    with pytest.raises(EventError):
        event_log.append(TickReceived(symbol="AAPL", ask=float("inf")))
    assert event_log.last_seq == 0
    assert event_log.append(tick(1)) is not None
    assert event_log.flush() == 1


def test_seq_is_gapless_and_ordered_across_reopen(db_path: Path) -> None:
    with EventLog(db_path) as log:
        first = [log.append(tick(i)) for i in range(100)]
        last = log.append(fill(0), wait=True)
    assert [e.seq for e in first if e] == list(range(1, 101))
    assert last is not None and last.seq == 101

    with EventLog(db_path) as log:
        assert log.last_seq == 101
        nxt = log.append(tick(1000))
        assert nxt is not None and nxt.seq == 102
    assert _stored_seqs(db_path) == list(range(1, 103))


@pytest.mark.parametrize("make", [fill, tick], ids=["critical", "non_critical"])
def test_appending_a_stored_event_id_again_is_a_no_op(db_path: Path, make: object) -> None:
    event = make(7)  # type: ignore[operator]
    with EventLog(db_path) as log:
        assert log.append(event, wait=True) is not None
        assert log.append(event) is None
        assert log.append(event, wait=True) is None
        assert log.last_seq == 1
    with EventLog(db_path) as log:  # the ids are reloaded at open
        assert log.append(event) is None
        assert log.count() == 1
        assert log.last_seq == 1


def test_a_non_critical_duplicate_older_than_the_window_is_stored_again(db_path: Path) -> None:
    # The documented DuckDB contract: non-critical ids are idempotent within the last
    # dedup_window non-critical events only (no index on event_id: it would grow in memory).
    with EventLog(db_path, dedup_window=2) as log:
        old = tick(0)
        log.append(old)
        for i in range(1, 5):
            log.append(tick(i))
        log.flush()
        again = log.append(old)  # beyond the window: stored again as seq 6
        log.append(tick(99))
        assert again is not None and again.seq == 6
        assert log.flush() == 7
        assert log.stats()["dropped_duplicates"] == 0
        assert log.healthy
        assert log.count() == 7
        assert [e.seq for e in log.read() if e.event_id == old.event_id] == [1, 6]
    assert _stored_seqs(db_path) == list(range(1, 8))


def test_critical_ids_stay_idempotent_beyond_the_window(db_path: Path) -> None:
    critical, ticks = fill(1), [tick(i) for i in range(10)]
    with EventLog(db_path, dedup_window=2) as log:
        assert log.append(critical, wait=True) is not None
        for t in ticks:
            log.append(t)
        assert log.append(critical, wait=True) is None
    with EventLog(db_path, dedup_window=2) as log:  # every critical id is reloaded at open
        assert log.append(critical, wait=True) is None
        assert log.append(ticks[-1]) is None  # among the last 2 non-critical: reloaded too
        assert log.count() == 11 and log.last_seq == 11


def _event_constraints(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT constraint_text FROM duckdb_constraints() WHERE table_name = 'events'"
            " AND constraint_type <> 'NOT NULL'"
        ).fetchall()
    finally:
        con.close()
    return sorted(r[0] for r in rows)


def _all_rows(path: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = ", ".join(EVENT_COLUMNS)  # the events (the chain hash is checked elsewhere)
        return con.execute(f"SELECT {columns} FROM events ORDER BY seq").fetchall()
    finally:
        con.close()


def test_a_new_file_has_no_index_on_event_id(event_log: EventLog, db_path: Path) -> None:
    event_log.append(fill(1), wait=True)
    event_log.close()
    assert _event_constraints(db_path) == ["PRIMARY KEY(seq)"]


# The events table as files were created before UNIQUE(event_id) was dropped (and before
# the hash chain).
_OLD_EVENTS_DDL = "CREATE TABLE events " + duckdb_file.UNCHAINED_EVENTS_COLUMNS.replace(
    "event_id VARCHAR NOT NULL", "event_id VARCHAR NOT NULL UNIQUE"
)


def _old_style_file(path: Path, events: list[Event]) -> list[tuple[object, ...]]:
    """A log file with the old DDL holding ``events`` (and a seq hole at 3, as an old
    dropped duplicate left one); returns its rows."""
    scratch = path.with_name("scratch.duckdb")
    with EventLog(scratch) as log:
        for e in events:
            log.append(e)
        log.start_run("cfg")
        log.flush()
    con = duckdb.connect(str(path))
    try:
        con.execute(_OLD_EVENTS_DDL)
        con.execute(f"ATTACH '{scratch}' AS scratch (READ_ONLY)")
        con.execute(
            f"INSERT INTO events SELECT {', '.join(EVENT_COLUMNS)} FROM scratch.events "
            "WHERE seq <> 3 ORDER BY seq"
        )
        con.execute(  # as written then: no chain_head (nor events.chain_hash, above)
            "CREATE TABLE snapshots AS SELECT id, seq, created_at, schema_version, state, "
            "checksum FROM scratch.snapshots"
        )
        con.execute("CREATE TABLE runs AS SELECT * FROM scratch.runs")
        con.execute("DETACH scratch")
    finally:
        con.close()
    assert _event_constraints(path) == ["PRIMARY KEY(seq)", "UNIQUE(event_id)"]
    return _all_rows(path)


def test_a_file_with_the_old_unique_event_id_is_migrated_once_at_open(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = [fill(0), *(tick(i) for i in range(1, 50)), fill(50)]
    rows = _old_style_file(db_path, events)
    assert len(rows) == 50 and rows[-1][0] == 51

    with caplog.at_level("WARNING", logger="persistence.event_log"), EventLog(db_path) as log:
        assert "drop UNIQUE(event_id) (50 rows, last seq 51)" in caplog.text
        assert "added the hash chain: 50 row(s)" in caplog.text  # then the chain
        assert log.verify_chain().ok  # over the hole at seq 3
        assert log.last_seq == 51
        assert log.append(events[0], wait=True) is None  # ids still deduplicated
        assert log.append(events[-2]) is None
        nxt = log.append(tick(1000), wait=True)
        assert nxt is not None and nxt.seq == 52
        assert len(log.runs()) == 1
    assert _event_constraints(db_path) == ["PRIMARY KEY(seq)"]
    assert _all_rows(db_path)[:-1] == rows  # every row and seq kept, the hole too
    assert _stored_seqs(db_path) == [1, 2, *range(4, 53)]

    caplog.clear()
    with caplog.at_level("WARNING", logger="persistence.event_log"), EventLog(db_path) as log:
        assert "UNIQUE" not in caplog.text  # migrated once
        assert log.append(tick(1001), wait=True) is not None
        assert log.last_seq == 53


def test_a_failed_migration_leaves_the_old_file_unchanged(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import persistence.event_log as event_log_module

    rows = _old_style_file(db_path, [fill(0), *(tick(i) for i in range(1, 10))])
    failing = (*event_log_module._MIGRATE_EVENTS, "SELECT error('injected failure')")
    monkeypatch.setattr(event_log_module, "_MIGRATE_EVENTS", failing)
    with pytest.raises(PersistenceError, match=r"the file is unchanged: .*injected failure"):
        EventLog(db_path).open()
    assert _event_constraints(db_path) == ["PRIMARY KEY(seq)", "UNIQUE(event_id)"]
    assert _all_rows(db_path) == rows

    monkeypatch.undo()
    with EventLog(db_path) as log:
        assert log.last_seq == 10
    assert _event_constraints(db_path) == ["PRIMARY KEY(seq)"]
    assert _all_rows(db_path) == rows


_CRASH_MID_MIGRATION = """
import os, sys
import persistence.event_log as m

def connect(self, _orig=m.EventLog._connect):
    con = _orig(self)
    con.create_function("crash_now", lambda: os._exit(9), [], "BIGINT", side_effects=True)
    return con

m.EventLog._connect = connect
m._MIGRATE_EVENTS = (*m._MIGRATE_EVENTS, "SELECT crash_now()")  # after the rename
m.EventLog(sys.argv[1]).open()
"""


def test_a_crash_mid_migration_leaves_the_old_table_and_the_next_open_migrates(
    db_path: Path,
) -> None:
    rows = _old_style_file(db_path, [fill(0), *(tick(i) for i in range(1, 10))])
    child = run_python("-c", _CRASH_MID_MIGRATION, str(db_path))
    assert child.returncode == 9, child.stderr  # died inside the migration transaction
    assert _event_constraints(db_path) == ["PRIMARY KEY(seq)", "UNIQUE(event_id)"]
    assert _all_rows(db_path) == rows
    with EventLog(db_path) as log:
        assert log.last_seq == 10
        nxt = log.append(tick(100), wait=True)
        assert nxt is not None and nxt.seq == 11
    assert _event_constraints(db_path) == ["PRIMARY KEY(seq)"]
    assert _all_rows(db_path)[:-1] == rows


def test_wait_true_is_durable_after_reopen(db_path: Path) -> None:
    log = EventLog(db_path, flush_interval_s=60).open()
    stored = log.append(tick(1), wait=True)
    assert stored is not None and log.committed_seq == 1
    assert _stored_seqs_from_reader(log) == [1]
    log.close()
    with EventLog(db_path) as again:
        assert again.read() == [stored]


def _stored_seqs_from_reader(log: EventLog) -> list[int]:
    return log.read_df()["seq"].tolist()


def test_group_commit_with_16_producers(event_log: EventLog) -> None:
    per_thread = 40
    results: list[list[Event]] = [[] for _ in range(16)]

    def produce(n: int) -> None:
        for i in range(per_thread):
            stored = event_log.append(fill(n * 1000 + i), wait=True)
            assert stored is not None and event_log.committed_seq >= stored.seq
            results[n].append(stored)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    read = event_log.read()
    assert len(read) == 16 * per_thread
    assert [e.seq for e in read] == list(range(1, 16 * per_thread + 1))
    assert len({e.event_id for e in read}) == len(read)
    by_id = {e.event_id: e for e in read}
    for mine in results:
        assert [e.seq for e in mine] == sorted(e.seq for e in mine)
        assert all(by_id[e.event_id] == e for e in mine)


def test_non_critical_batches_are_written_by_size(db_path: Path) -> None:
    with EventLog(db_path, batch_size=50, flush_interval_s=60) as log:
        for i in range(49):
            log.append(tick(i))
        time.sleep(0.2)
        assert log.committed_seq == 0
        log.append(tick(49))
        _wait_until(lambda: log.committed_seq == 50)


def test_non_critical_batches_are_written_by_interval(db_path: Path) -> None:
    with EventLog(db_path, batch_size=10_000, flush_interval_s=0.05) as log:
        log.append(tick(1))
        _wait_until(lambda: log.committed_seq == 1)


def test_close_writes_everything_queued(db_path: Path) -> None:
    log = EventLog(db_path, batch_size=10_000, flush_interval_s=60).open()
    for i in range(500):
        log.append(tick(i))
    log.close()
    assert _stored_seqs(db_path) == list(range(1, 501))


def test_a_critical_event_commits_the_batch_before_it(db_path: Path) -> None:
    with EventLog(db_path, batch_size=10_000, flush_interval_s=60) as log:
        for i in range(10):
            log.append(tick(i))
        log.append(fill(1))
        _wait_until(lambda: log.committed_seq == 11)


def _wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def _filled(log: EventLog) -> None:
    for i in range(10):
        log.append(tick(i, symbol="AAPL"))
        log.append(tick(i, symbol="MSFT"))
    log.append(fill(1, symbol="AAPL"))


def test_read_filters_by_seq_range_and_limit(event_log: EventLog) -> None:
    _filled(event_log)
    assert [e.seq for e in event_log.read(since_seq=5, until_seq=8)] == [6, 7, 8]
    assert [e.seq for e in event_log.read(since_seq=18)] == [19, 20, 21]
    assert [e.seq for e in event_log.read(limit=2)] == [1, 2]


def test_read_filters_by_topic_pattern_and_type(event_log: EventLog) -> None:
    _filled(event_log)
    assert len(event_log.read(topic="data.ticks.aapl")) == 10
    assert len(event_log.read(topic="data.ticks.*")) == 20
    assert len(event_log.read(topic="data.>")) == 20
    assert len(event_log.read(topic="*.ticks.msft")) == 10
    assert [e.type for e in event_log.read(topic="fills.*")] == ["trade_executed"]
    assert len(event_log.read(topic="data.*")) == 0
    assert len(event_log.read(types=["trade_executed", "tick"])) == 21
    assert event_log.count(types=["tick"], topic="data.ticks.msft") == 10


def test_read_filters_by_time_range(event_log: EventLog) -> None:
    _filled(event_log)
    ms = 1_000_000
    got = event_log.read(start_ns=T0 + 2 * ms, end_ns=T0 + 4 * ms, types=["tick"])
    assert sorted({e.ts_event for e in got}) == [T0 + 2 * ms, T0 + 3 * ms]


def test_read_df_and_iter_batches(event_log: EventLog) -> None:
    _filled(event_log)
    df = event_log.read_df(topic="data.ticks.aapl")
    assert list(df.columns[:3]) == ["seq", "event_id", "ts_event"]
    assert len(df) == 10 and (df["type"] == "tick").all()
    batches = list(event_log.iter_batches(batch_size=8))
    assert [len(b) for b in batches] == [8, 8, 5]
    assert [e for b in batches for e in b] == event_log.read()


@pytest.mark.parametrize(
    "hostile",
    [
        "x' OR 1=1 --",
        "data.ticks.aapl'; DROP TABLE events; --",
        "%",
        "data.%",
        "data.ticks._apl",
        "data.(.*)",
        "*' OR '1'='1",
    ],
)
def test_hostile_topic_filters_match_nothing_or_raise_cleanly(
    event_log: EventLog, hostile: str
) -> None:
    _filled(event_log)
    try:
        got = event_log.read(topic=hostile)
    except EventError as exc:
        assert repr(hostile) in str(exc) or "segment" in str(exc)
    else:
        assert got == []
    assert event_log.count() == 21


def test_underscore_in_a_pattern_is_not_a_like_wildcard(event_log: EventLog) -> None:
    event_log.append(tick(1, symbol="A_B"))
    event_log.append(tick(2, symbol="AXB"))
    assert [e.topic for e in event_log.read(topic="data.ticks.a_b")] == ["data.ticks.a_b"]
    assert len(event_log.read(topic="data.ticks.*")) == 2


def test_second_process_gets_a_clear_error(event_log: EventLog, db_path: Path) -> None:
    event_log.append(fill(1), wait=True)
    code = (
        "import sys\n"
        "from persistence import EventLog\n"
        "from streams.errors import PersistenceError\n"
        "try:\n"
        f"    EventLog({str(db_path)!r}).open()\n"
        "except PersistenceError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    result = run_python("-c", code, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "held by another process" in result.stdout
    assert str(db_path) in result.stdout


def test_opening_the_same_file_twice_in_one_process_is_refused(
    event_log: EventLog, db_path: Path
) -> None:
    with pytest.raises(PersistenceError, match="already open"):
        EventLog(db_path).open()


def test_append_after_close_raises(db_path: Path) -> None:
    log = EventLog(db_path).open()
    log.close()
    with pytest.raises(PersistenceError, match="not open"):
        log.append(tick(1))


def test_runs_left_running_are_marked_crashed(db_path: Path) -> None:
    with EventLog(db_path) as log:
        first = log.start_run("cfg-a")
    with EventLog(db_path) as log:
        second = log.start_run("cfg-b")
        log.end_run(second, "clean")
        with pytest.raises(PersistenceError, match="not a recorded run"):
            log.end_run("nope")
        runs = {r.run_id: r for r in log.runs()}
    assert runs[first].how == "crashed"
    assert runs[second].how == "clean" and runs[second].ended_at is not None
    assert runs[second].config_hash == "cfg-b"


def test_a_failing_disk_is_reported_retried_and_recovered(db_path: Path) -> None:
    result = run_python("-m", "tests.persistence.disk_full_child", str(db_path))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert "could not commit" in report["error"]
    assert report["healthy_while_failing"] is False
    assert "File too large" in report["last_error"]
    assert report["recovered"] is True
    stored = report["stored"]
    assert stored == list(range(1, len(stored) + 1))  # gapless, nothing lost
    assert report["acked_last"] in stored
    assert report["after_seq"] == stored[-1]


def _memory_limit(log: EventLog) -> str:
    with log._reader() as cur:
        return str(cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def test_memory_limit_is_applied_to_the_connection(db_path: Path) -> None:
    with EventLog(db_path, memory_limit="64MiB") as log:
        assert _memory_limit(log) == "64.0 MiB"
        log.append(tick(1), wait=True)
    with EventLog(db_path) as log:  # "" keeps DuckDB's default (a share of RAM), not 64 MiB
        assert _memory_limit(log) != "64.0 MiB"
        assert log.count() == 1


@pytest.mark.parametrize("bad", ["lots", "256", "x'; DROP TABLE events; --"])
def test_a_memory_limit_duckdb_refuses_fails_open_naming_the_value(db_path: Path, bad: str) -> None:
    log = EventLog(db_path, memory_limit=bad)
    with pytest.raises(PersistenceError, match="memory_limit") as info:
        log.open()
    assert repr(bad) in str(info.value)
    assert not log.is_open
    with EventLog(db_path, memory_limit="128MB") as again:  # the file was released
        assert again.last_seq == 0
