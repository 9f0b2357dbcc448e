"""The recorder contract, one suite run against every backend (DuckDB file, PostgreSQL).

Both backends must keep the same guarantees (persistence/recorder.py): gapless seq in commit
order, idempotent event ids (critical ones for ever, others within the last ``dedup_window``
non-critical events), critical events durable before ``append`` returns (proved by SIGKILLing a
child that printed its acknowledged seqs), the same filtered reads, checksummed snapshots with
restore = snapshot + tail, run records, seq continuing after a reopen, and the hash chain
(appends verify, a snapshot records the chain head, a restart or a crash continues the chain,
a changed row is found at its seq). The one documented difference: a non-critical duplicate
older than the window (see its test).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from persistence import EventLog, full_replay, restore
from persistence.chain import GENESIS_HEX, link
from persistence.codec import EVENT_COLUMNS
from persistence.pg import PostgresEventLog
from persistence.recorder import Recorder
from state import model
from streams.errors import EventError, PersistenceError
from streams.events import CashAdjusted, Event, TickReceived, TradeExecuted
from streams.topics import matches
from tests.persistence.builders import T0, every_event_type, fill, tick
from tests.persistence.crash_parent import parse_acks, start_crash_child

CRASH_TRIALS = 3


@dataclass
class Backend:
    """One storage backend under test: how to open a recorder on it and look at its rows
    directly (bypassing the recorder, which must be closed or dead for DuckDB)."""

    name: str
    target: str  # the DuckDB file or the PostgreSQL DSN

    def make(self, **kw: Any) -> EventLog | PostgresEventLog:
        if self.name == "duckdb":
            return EventLog(self.target, **kw)
        return PostgresEventLog(self.target, **kw)

    def execute(self, sql: str) -> None:
        """Run ``sql`` on the store directly (the recorder closed, for DuckDB)."""
        if self.name == "duckdb":
            con = duckdb.connect(self.target)
            try:
                con.execute(sql)
            finally:
                con.close()
            return
        with psycopg.connect(self.target) as pg:
            pg.execute(sql)  # type: ignore[arg-type]

    def corrupt_snapshot(self, snapshot_id: int) -> None:
        """Change a stored snapshot's state without updating its checksum."""
        if self.name == "duckdb":
            con = duckdb.connect(self.target)
            try:
                con.execute(
                    "UPDATE snapshots SET state = json_merge_patch(state, '{\"pnl\": null}') "
                    "WHERE id = ?",
                    [snapshot_id],
                )
            finally:
                con.close()
            return
        with psycopg.connect(self.target) as pg:
            pg.execute(
                "UPDATE snapshots SET state = %s WHERE id = %s", ['{"pnl": null}', snapshot_id]
            )


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "duckdb":
        return Backend("duckdb", str(tmp_path / "events.duckdb"))
    return Backend("postgres", request.getfixturevalue("pg_dsn"))


@pytest.fixture
def recorder(backend: Backend) -> Iterator[EventLog | PostgresEventLog]:
    with backend.make(flush_interval_s=0.01) as log:
        yield log


def _history(n: int) -> list[Event]:
    events: list[Event] = [CashAdjusted(amount=100_000.0, reason="deposit")]
    for i in range(n):
        events.append(tick(i, symbol="AAPL"))
        if i % 5 == 0:
            events.append(fill(i, symbol="AAPL", side="buy" if i % 10 else "sell"))
    return events


def _append_all(log: Recorder, events: list[Event]) -> list[Event]:
    stored = [log.append(e) for e in events]
    log.flush()
    return [e for e in stored if e is not None]


def _snapshot(log: EventLog | PostgresEventLog) -> int:
    seq = log.flush()
    state = full_replay(log, upto_seq=seq)  # type: ignore[arg-type]
    return log.save_snapshot(seq, model.SCHEMA_VERSION, model.state_to_dict(state))


def test_every_backend_is_a_recorder(recorder: Recorder) -> None:
    assert isinstance(recorder, Recorder)
    assert recorder.is_open and recorder.healthy and recorder.last_error is None
    assert recorder.last_seq == recorder.committed_seq == 0


def test_seq_is_gapless_in_commit_order_under_concurrent_appends(recorder: Recorder) -> None:
    threads, per_thread = 4, 150
    acked: dict[int, list[tuple[int, str]]] = {t: [] for t in range(threads)}
    prefixes_ok: list[bool] = []
    done = threading.Event()

    def writer(t: int) -> None:
        for i in range(per_thread):
            event: Event = (
                fill(t * 1000 + i, event_id=f"w{t}-{i}")
                if i % 10 == 0
                else tick(i, event_id=f"w{t}-{i}")
            )
            stored = recorder.append(event, wait=event.CRITICAL)
            assert stored is not None
            acked[t].append((stored.seq, stored.event_id))

    def reader() -> None:
        while not done.is_set():
            seqs = [e.seq for e in recorder.read()]
            prefixes_ok.append(seqs == list(range(1, len(seqs) + 1)))

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    watcher.join()

    total = threads * per_thread
    assert recorder.flush() == total
    stored = {e.seq: e.event_id for e in recorder.read()}
    assert sorted(stored) == list(range(1, total + 1))
    for rows in acked.values():
        seqs = [s for s, _ in rows]
        assert seqs == sorted(seqs)  # each producer's events keep their order
        assert all(stored[s] == eid for s, eid in rows)
    assert prefixes_ok and all(prefixes_ok)  # a reader never saw seq n + 1 without n


def test_event_id_is_idempotent_for_critical_and_other_events(backend: Backend) -> None:
    critical, other = fill(1), tick(1)
    with backend.make() as log:
        first = log.append(critical, wait=True)
        assert first is not None and first.seq == 1
        assert log.append(critical) is None
        assert log.append(critical, wait=True) is None
        second = log.append(other)
        assert second is not None and second.seq == 2
        assert log.append(other) is None
        assert log.flush() == 2 and log.count() == 2
    with backend.make() as log:  # remembered across a reopen
        assert log.append(critical, wait=True) is None
        assert log.append(other) is None
        assert log.last_seq == 2 and log.count() == 2


def test_a_critical_duplicate_is_refused_however_old(backend: Backend) -> None:
    critical = fill(1)
    with backend.make(dedup_window=2) as log:
        assert log.append(critical, wait=True) is not None
        _append_all(log, [tick(i) for i in range(5)])
        assert log.append(critical, wait=True) is None
    with backend.make(dedup_window=2) as log:
        assert log.append(critical, wait=True) is None
        assert log.last_seq == log.count() == 6


def test_a_non_critical_duplicate_older_than_the_dedup_window(backend: Backend) -> None:
    """Non-critical ids are idempotent within the last ``dedup_window`` non-critical events
    (both backends, in memory). Beyond the window the backends differ, by design:
    PostgreSQL's unique index lives on disk, so its writer still finds the duplicate and drops
    it (its seq stays a hole); DuckDB has no index on event_id (DuckDB keeps indexes wholly in
    memory, so one over every id grew without bound: docs/reliability.md, Soak), so the late
    duplicate is stored again under its new seq and the log stays gapless."""
    old = tick(0)
    with backend.make(dedup_window=2) as log:
        _append_all(log, [old, tick(1), tick(2), tick(3)])
        again = log.append(old)  # forgotten by the window: it gets a seq...
        assert again is not None and again.seq == 5
        after = log.append(fill(1), wait=True)
        assert after is not None and after.seq == 6
        assert log.flush() == 6
        assert log.healthy
        if backend.name == "postgres":
            # ...but the writer finds it stored and drops it: its seq stays a hole, which the
            # hash chain passes over (it links the rows actually stored).
            assert [e.seq for e in log.read()] == [1, 2, 3, 4, 6]
            assert log.stats()["dropped_duplicates"] == 1
            report = log.verify_chain()
            assert report.ok and report.events == 5 and report.last_seq == 6
        else:
            # ...and it is stored again.
            assert [e.seq for e in log.read()] == [1, 2, 3, 4, 5, 6]
            assert [e.seq for e in log.read() if e.event_id == old.event_id] == [1, 5]
            assert log.stats()["dropped_duplicates"] == 0


def _kill_and_collect(child: subprocess.Popen[str], after_s: float) -> dict[int, str]:
    """Let the child acknowledge a few events (it may start slowly on a busy machine), then
    SIGKILL it ``after_s`` later, mid-stream; every seq it printed as acknowledged."""
    assert child.stdout is not None
    first: list[str] = []
    while len(parse_acks(first)) < 3:
        line = child.stdout.readline()
        assert line, "the child exited before acknowledging anything"
        first.append(line)
    threading.Event().wait(after_s)
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    return parse_acks(first + out.splitlines())


@pytest.mark.slow
def test_acknowledged_critical_events_survive_sigkill(backend: Backend) -> None:
    rng = random.Random(7)
    all_acked: dict[int, str] = {}
    for trial in range(CRASH_TRIALS):
        child = start_crash_child(backend.target, f"t{trial}")
        acked = _kill_and_collect(child, rng.uniform(0.05, 0.4))
        assert child.returncode == -signal.SIGKILL
        all_acked.update(acked)

        with backend.make() as log:  # opening waits for a commit the kill left in flight
            rows = {e.seq: e.event_id for e in log.read()}
            missing = {s: e for s, e in all_acked.items() if rows.get(s) != e}
            assert not missing, f"trial {trial}: acknowledged but not stored: {missing}"
            assert sorted(rows) == list(range(1, len(rows) + 1)), f"trial {trial}: seq gaps"
            assert log.last_seq == len(rows)
            nxt = log.append(tick(trial), wait=True)
            assert nxt is not None and nxt.seq == len(rows) + 1
            chain = log.verify_chain()  # the chain goes on across the kill
            assert chain.ok and chain.last_seq == nxt.seq, chain
            result = restore(log)
            assert result.seq == nxt.seq
            assert result.state == full_replay(log)


def test_filtered_reads_agree_with_the_events_appended(recorder: Recorder) -> None:
    events = [*every_event_type(), *(tick(i, symbol="MSFT") for i in range(5)), fill(9)]
    stored = _append_all(recorder, events)
    by_seq = {e.seq: e for e in stored}

    assert recorder.read() == stored
    for pattern in ("data.ticks.aapl", "data.*.msft", "data.>", "system.*", "fills.>", "nope"):
        expected = [e for e in stored if matches(pattern, e.topic)]
        assert recorder.read(topic=pattern) == expected, pattern
        assert recorder.count(topic=pattern) == len(expected), pattern
    types = [TickReceived.TYPE, TradeExecuted.TYPE]
    assert recorder.read(types=types) == [e for e in stored if e.TYPE in types]
    lo, hi = T0 + 1_000_000, T0 + 4_000_000
    in_time = [e for e in stored if lo <= e.ts_event < hi]
    assert in_time and recorder.read(start_ns=lo, end_ns=hi) == in_time
    assert recorder.read(since_seq=3, until_seq=7) == [by_seq[s] for s in range(4, 8)]
    assert recorder.read(since_seq=2, limit=3) == [by_seq[s] for s in (3, 4, 5)]
    assert (
        recorder.read(topic="data.ticks.msft", types=[TickReceived.TYPE], limit=2)
        == [e for e in stored if e.topic == "data.ticks.msft"][:2]
    )
    frame = recorder.read_df(until_seq=5)
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert list(frame["seq"]) == [1, 2, 3, 4, 5]
    assert all(isinstance(p, str) for p in frame["payload"])
    with pytest.raises(EventError):
        recorder.read(topic="x' OR 1=1 --")
    with pytest.raises(PersistenceError):
        recorder.read(limit=-1)


def test_iter_batches_and_count_cover_the_same_rows_as_read(recorder: Recorder) -> None:
    stored = _append_all(recorder, _history(20))
    batches = list(recorder.iter_batches(batch_size=7))
    assert [e for b in batches for e in b] == stored
    assert all(len(b) == 7 for b in batches[:-1]) and 0 < len(batches[-1]) <= 7
    assert [
        e for b in recorder.iter_batches(since_seq=5, until_seq=12, batch_size=3) for e in b
    ] == (stored[5:12])
    assert recorder.count() == len(stored)
    assert recorder.count(since_seq=5, until_seq=12) == 7
    assert recorder.count(types=[TradeExecuted.TYPE]) == sum(
        isinstance(e, TradeExecuted) for e in stored
    )


def test_corrupt_snapshot_is_skipped_and_restore_equals_full_replay(backend: Backend) -> None:
    with backend.make() as log:
        _append_all(log, _history(20))
        good_id = _snapshot(log)
        good_seq = log.committed_seq
        _append_all(log, [tick(100 + i) for i in range(10)])
        bad_id = _snapshot(log)
        with pytest.raises(PersistenceError, match="not covered"):
            log.save_snapshot(log.last_seq + 5, model.SCHEMA_VERSION, {})
    backend.corrupt_snapshot(bad_id)

    with backend.make() as log:
        lookup = log.latest_snapshot()
        result = restore(log)
        expected = full_replay(log)
        last = log.last_seq

    assert lookup.snapshot is not None
    assert (lookup.snapshot.id, lookup.snapshot.seq) == (good_id, good_seq)
    assert [(s.id, s.reason) for s in lookup.skipped] == [(bad_id, "checksum mismatch")]
    assert (result.snapshot_seq, result.seq, result.replayed) == (good_seq, last, last - good_seq)
    assert [s.id for s in result.skipped_snapshots] == [bad_id]
    assert result.state == expected


def test_restore_is_snapshot_plus_tail(recorder: EventLog | PostgresEventLog) -> None:
    _append_all(recorder, _history(30))
    _snapshot(recorder)
    snapshot_seq = recorder.committed_seq
    _append_all(recorder, _history(10)[1:] + every_event_type())
    result = restore(recorder)  # type: ignore[arg-type]
    assert result.snapshot_seq == snapshot_seq
    assert result.replayed == recorder.last_seq - snapshot_seq
    assert result.state == full_replay(recorder)  # type: ignore[arg-type]
    upto = snapshot_seq - 3
    assert restore(recorder, upto_seq=upto).state == full_replay(recorder, upto_seq=upto)  # type: ignore[arg-type]


def test_runs_record_how_each_run_ended(backend: Backend) -> None:
    with backend.make() as log:
        first = log.start_run("cfg-1", started_at_ns=1)
        log.end_run(first, "clean", ended_at_ns=2)
        second = log.start_run("cfg-2", started_at_ns=3)  # never ended: the process died
    with backend.make() as log:
        third = log.start_run("cfg-3", started_at_ns=4)
        runs = log.runs()
        with pytest.raises(PersistenceError, match="not a recorded run"):
            log.end_run("nope")
    assert [(r.run_id, r.how, r.config_hash) for r in runs] == [
        (first, "clean", "cfg-1"),
        (second, "crashed", "cfg-2"),
        (third, "running", "cfg-3"),
    ]
    assert runs[0].ended_at == 2 and runs[2].pid == os.getpid()


def test_reopen_continues_seq_at_max_plus_one(backend: Backend) -> None:
    with backend.make() as log:
        _append_all(log, [tick(i) for i in range(5)])
        log.append(fill(1), wait=True)
        assert log.committed_seq == 6
    with backend.make() as log:
        assert log.last_seq == log.committed_seq == 6
        nxt = log.append(tick(99), wait=True)
        assert nxt is not None and nxt.seq == 7
        assert [e.seq for e in log.read()] == list(range(1, 8))
        stats = log.stats()
        assert stats["last_seq"] == stats["committed_seq"] == 7 and stats["healthy"] is True
    assert not log.is_open and not log.healthy
    with pytest.raises(PersistenceError, match="not open"):
        log.append(tick(100))


def test_reads_see_every_append_but_a_read_of_committed_events_forces_no_commit(
    backend: Backend,
) -> None:
    with backend.make(flush_interval_s=30.0, batch_size=1_000_000) as log:
        done = log.append(fill(1), wait=True)
        assert done is not None and log.committed_seq == done.seq
        log.append(tick(2))  # pending: nothing writes it for 30 s

        committed = log.read(until_seq=log.committed_seq)
        assert [e.seq for e in committed] == [done.seq]
        assert log.committed_seq == done.seq  # the bounded read did not force a commit
        assert len(log.read_df(until_seq=done.seq)) == 1 and log.committed_seq == done.seq

        everything = log.read()  # unbounded: flushes first, so it sees the pending tick
        assert [e.seq for e in everything] == [done.seq, done.seq + 1]
        assert log.committed_seq == done.seq + 1


# -- the hash chain ----------------------------------------------------------------------------
def test_appends_produce_a_verifiable_chain(recorder: EventLog | PostgresEventLog) -> None:
    assert recorder.verify_chain().head == GENESIS_HEX  # an empty log: the genesis head
    threads = [
        threading.Thread(
            target=lambda t=t: [
                recorder.append(fill(t * 100 + i) if i % 5 == 0 else tick(t * 100 + i))
                for i in range(60)
            ]
        )
        for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    last = recorder.flush()

    reports = [recorder.verify_chain(batch_size=b) for b in (1, 13, 50_000)]

    assert all(r == reports[0] for r in reports)
    report = reports[0]
    assert report.ok and report.events == recorder.count() == 240 and report.last_seq == last
    assert report.head == recorder.chain_head_at(last)
    assert report.first_bad_seq is None and report.reason is None
    heads = {recorder.chain_head_at(seq) for seq in range(1, last + 1)}
    assert len(heads) == last  # every event has its own link


def test_a_snapshot_carries_the_chain_head(recorder: EventLog | PostgresEventLog) -> None:
    recorder.save_snapshot(0, model.SCHEMA_VERSION, {})
    _append_all(recorder, _history(20))
    at = recorder.committed_seq - 4
    state = full_replay(recorder, upto_seq=at)  # type: ignore[arg-type]
    recorder.save_snapshot(at, model.SCHEMA_VERSION, model.state_to_dict(state))
    _append_all(recorder, [tick(100 + i) for i in range(5)])

    snapshot = recorder.latest_snapshot().snapshot
    report = recorder.verify_chain()

    assert snapshot is not None and snapshot.seq == at
    assert snapshot.chain_head == recorder.chain_head_at(at) != GENESIS_HEX
    first = recorder.latest_snapshot(max_seq=0).snapshot
    assert first is not None and first.chain_head == GENESIS_HEX
    assert report.ok and report.snapshots_checked == 2


def test_a_restart_continues_the_chain(backend: Backend) -> None:
    with backend.make() as log:
        _append_all(log, _history(10))
        before = log.verify_chain()
        head_at_close = log.chain_head_at(log.committed_seq)
    assert before.ok and before.head == head_at_close
    with backend.make() as log:
        assert log.chain_head_at(before.last_seq) == head_at_close
        _append_all(log, [tick(50 + i) for i in range(5)])
        log.append(fill(77), wait=True)
        after = log.verify_chain()
        rows = [r for batch in log.iter_chain_rows() for r in batch]
    assert after.ok and after.events == before.events + 6
    assert after.last_seq == before.last_seq + 6
    # The first event after the restart chains on from the head the log closed with.
    first_new = rows[before.events]
    assert first_new[0] == before.last_seq + 1
    assert first_new[-1] == link(bytes.fromhex(head_at_close), first_new)


def test_a_changed_row_is_found_at_its_seq(backend: Backend) -> None:
    with backend.make() as log:
        _append_all(log, _history(15))
        intact = log.verify_chain()
    assert intact.ok
    stream = " AND stream = 'default'" if backend.name == "postgres" else ""
    backend.execute(f"UPDATE events SET payload = '{{\"qty\": 1000}}' WHERE seq = 9{stream}")
    with backend.make() as log:
        report = log.verify_chain()
    assert not report.ok and report.first_bad_seq == 9 and report.last_seq == 8
    assert "does not match its chain hash" in (report.reason or "")
