"""The recorder half of the contract: reads, dedup windows, snapshots, runs, reopen, the chain.

``RecorderContract`` is the class every journal's test class subclasses (see
:mod:`tests.persistence.contract` for the hooks and capabilities). The guarantees
(persistence/recorder.py): gapless seq in commit order, idempotent event ids (critical ones for
ever, others within the last ``dedup_window`` non-critical events), critical events durable
before ``append`` returns (proved by SIGKILLing a child that printed its acknowledged seqs), the
same filtered reads, checksummed snapshots with restore = snapshot + tail, run records, seq
continuing after a reopen, and the hash chain (appends verify, a snapshot records the chain
head, a restart or a crash continues the chain, a changed row is found at its seq). The one
documented difference between the event logs: a non-critical duplicate older than the window
(:attr:`~tests.persistence.contract.JournalContract.old_duplicate_stored_again`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from typing import Any

import pytest

from persistence import full_replay, restore
from persistence.chain import GENESIS_HEX, link
from persistence.codec import EVENT_COLUMNS
from persistence.recorder import Recorder
from state import model
from streams.errors import EventError, PersistenceError
from streams.events import TickReceived, TradeExecuted
from streams.topics import matches
from tests.persistence.builders import T0, every_event_type, fill, tick
from tests.persistence.contract import JournalContract, append_all, history, needs, snapshot
from tests.persistence.crash_parent import check_acknowledged_kept, parse_acks

CRASH_TRIALS = 3


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


class RecorderContract(JournalContract):
    """The whole contract: the journal tests plus every part of the Recorder protocol."""

    @needs("supports_reads", "supports_snapshots", "supports_runs", "supports_chain")
    def test_every_backend_is_a_recorder(self, recorder: Any) -> None:
        assert isinstance(recorder, Recorder)
        assert recorder.is_open and recorder.healthy and recorder.last_error is None
        assert recorder.last_seq == recorder.committed_seq == 0

    @needs("durable", "supports_reads")
    def test_event_id_is_idempotent_for_critical_and_other_events(self) -> None:
        critical, other = fill(1), tick(1)
        with self.opened() as log:
            first = log.append(critical, wait=True)
            assert first is not None and first.seq == 1
            assert log.append(critical) is None
            assert log.append(critical, wait=True) is None
            second = log.append(other)
            assert second is not None and second.seq == 2
            assert log.append(other) is None
            assert log.flush() == 2 and log.count() == 2
        with self.opened() as log:  # remembered across a reopen
            assert log.append(critical, wait=True) is None
            assert log.append(other) is None
            assert log.last_seq == 2 and log.count() == 2

    @needs("durable", "bounded_dedup", "supports_reads")
    def test_a_critical_duplicate_is_refused_however_old(self) -> None:
        critical = fill(1)
        with self.opened(dedup_window=2) as log:
            assert log.append(critical, wait=True) is not None
            append_all(log, [tick(i) for i in range(5)])
            assert log.append(critical, wait=True) is None
        with self.opened(dedup_window=2) as log:
            assert log.append(critical, wait=True) is None
            assert log.last_seq == log.count() == 6

    @needs("bounded_dedup", "supports_reads", "supports_chain")
    def test_a_non_critical_duplicate_older_than_the_dedup_window(self) -> None:
        """Non-critical ids are idempotent within the last ``dedup_window`` non-critical events
        (both backends, in memory). Beyond the window the backends differ, by design:
        PostgreSQL's unique index lives on disk, so its writer still finds the duplicate and
        drops it (its seq stays a hole); DuckDB has no index on event_id (DuckDB keeps indexes
        wholly in memory, so one over every id grew without bound: docs/reliability.md, Soak),
        so the late duplicate is stored again under its new seq and the log stays gapless."""
        old = tick(0)
        with self.opened(dedup_window=2) as log:
            append_all(log, [old, tick(1), tick(2), tick(3)])
            again = log.append(old)  # forgotten by the window: it gets a seq...
            assert again is not None and again.seq == 5
            after = log.append(fill(1), wait=True)
            assert after is not None and after.seq == 6
            assert log.flush() == 6
            assert log.healthy
            if self.old_duplicate_stored_again:
                # ...and it is stored again.
                assert [e.seq for e in log.read()] == [1, 2, 3, 4, 5, 6]
                assert [e.seq for e in log.read() if e.event_id == old.event_id] == [1, 5]
                assert log.stats()["dropped_duplicates"] == 0
            else:
                # ...but the writer finds it stored and drops it: its seq stays a hole, which
                # the hash chain passes over (it links the rows actually stored).
                assert [e.seq for e in log.read()] == [1, 2, 3, 4, 6]
                assert log.stats()["dropped_duplicates"] == 1
                report = log.verify_chain()
                assert report.ok and report.events == 5 and report.last_seq == 6

    @pytest.mark.slow
    @needs("durable", "supports_reads", "supports_chain", "supports_snapshots")
    def test_acknowledged_critical_events_survive_sigkill(self) -> None:
        rng = random.Random(7)
        all_acked: dict[int, str] = {}
        for trial in range(CRASH_TRIALS):
            child = self.start_crash_child(f"t{trial}")
            acked = _kill_and_collect(child, rng.uniform(0.05, 0.4))
            assert child.returncode == -signal.SIGKILL
            all_acked.update(acked)

            with self.opened() as log:  # opening waits for a commit the kill left in flight
                nxt = check_acknowledged_kept(log, all_acked, trial)
                chain = log.verify_chain()  # the chain goes on across the kill
                assert chain.ok and chain.last_seq == nxt.seq, chain
                result = restore(log)
                assert result.seq == nxt.seq
                assert result.state == full_replay(log)

    @needs("supports_reads")
    def test_filtered_reads_agree_with_the_events_appended(self, recorder: Any) -> None:
        events = [*every_event_type(), *(tick(i, symbol="MSFT") for i in range(5)), fill(9)]
        stored = append_all(recorder, events)
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
        msft = [e.seq for e in stored if matches("data.*.msft", e.topic)]
        newest = recorder.read_df(topic="data.*.msft", limit=2, newest=True)
        assert list(newest["seq"]) == msft[-2:]  # the newest two, oldest first
        assert list(recorder.read_df(topic="data.*.msft", newest=True)["seq"]) == msft
        with pytest.raises(EventError):
            recorder.read(topic="x' OR 1=1 --")
        with pytest.raises(PersistenceError):
            recorder.read(limit=-1)

    @needs("supports_reads")
    def test_iter_batches_and_count_cover_the_same_rows_as_read(self, recorder: Any) -> None:
        stored = append_all(recorder, history(20))
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

    @needs("durable", "supports_reads", "supports_snapshots")
    def test_corrupt_snapshot_is_skipped_and_restore_equals_full_replay(self) -> None:
        with self.opened() as log:
            append_all(log, history(20))
            good_id = snapshot(log)
            good_seq = log.committed_seq
            append_all(log, [tick(100 + i) for i in range(10)])
            bad_id = snapshot(log)
            with pytest.raises(PersistenceError, match="not covered"):
                log.save_snapshot(log.last_seq + 5, model.SCHEMA_VERSION, {})
        self.corrupt_snapshot(bad_id)

        with self.opened() as log:
            lookup = log.latest_snapshot()
            result = restore(log)
            expected = full_replay(log)
            last = log.last_seq

        assert lookup.snapshot is not None
        assert (lookup.snapshot.id, lookup.snapshot.seq) == (good_id, good_seq)
        assert [(s.id, s.reason) for s in lookup.skipped] == [(bad_id, "checksum mismatch")]
        assert (result.snapshot_seq, result.seq, result.replayed) == (
            good_seq,
            last,
            last - good_seq,
        )
        assert [s.id for s in result.skipped_snapshots] == [bad_id]
        assert result.state == expected

    @needs("supports_reads", "supports_snapshots")
    def test_restore_is_snapshot_plus_tail(self, recorder: Any) -> None:
        append_all(recorder, history(30))
        snapshot(recorder)
        snapshot_seq = recorder.committed_seq
        append_all(recorder, history(10)[1:] + every_event_type())
        result = restore(recorder)
        assert result.snapshot_seq == snapshot_seq
        assert result.replayed == recorder.last_seq - snapshot_seq
        assert result.state == full_replay(recorder)
        upto = snapshot_seq - 3
        assert restore(recorder, upto_seq=upto).state == full_replay(recorder, upto_seq=upto)

    @needs("durable", "supports_runs")
    def test_runs_record_how_each_run_ended(self) -> None:
        with self.opened() as log:
            first = log.start_run("cfg-1", started_at_ns=1)
            log.end_run(first, "clean", ended_at_ns=2)
            second = log.start_run("cfg-2", started_at_ns=3)  # never ended: the process died
        with self.opened() as log:
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

    @needs("durable", "supports_reads")
    def test_reopen_continues_seq_at_max_plus_one(self) -> None:
        with self.opened() as log:
            append_all(log, [tick(i) for i in range(5)])
            log.append(fill(1), wait=True)
            assert log.committed_seq == 6
        with self.opened() as log:
            assert log.last_seq == log.committed_seq == 6
            nxt = log.append(tick(99), wait=True)
            assert nxt is not None and nxt.seq == 7
            assert [e.seq for e in log.read()] == list(range(1, 8))
            stats = log.stats()
            assert stats["last_seq"] == stats["committed_seq"] == 7 and stats["healthy"] is True
        assert not log.is_open and not log.healthy
        with pytest.raises(PersistenceError, match="not open"):
            log.append(tick(100))

    @needs("supports_reads")
    def test_reads_see_every_append_but_a_read_of_committed_events_forces_no_commit(
        self,
    ) -> None:
        with self.opened(flush_interval_s=30.0, batch_size=1_000_000) as log:
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

    # -- the hash chain ------------------------------------------------------------------------
    @needs("supports_chain", "supports_reads")
    def test_appends_produce_a_verifiable_chain(self, recorder: Any) -> None:
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

    @needs("supports_chain", "supports_snapshots")
    def test_a_snapshot_carries_the_chain_head(self, recorder: Any) -> None:
        recorder.save_snapshot(0, model.SCHEMA_VERSION, {})
        append_all(recorder, history(20))
        at = recorder.committed_seq - 4
        state = full_replay(recorder, upto_seq=at)
        recorder.save_snapshot(at, model.SCHEMA_VERSION, model.state_to_dict(state))
        append_all(recorder, [tick(100 + i) for i in range(5)])

        latest = recorder.latest_snapshot().snapshot
        report = recorder.verify_chain()

        assert latest is not None and latest.seq == at
        assert latest.chain_head == recorder.chain_head_at(at) != GENESIS_HEX
        first = recorder.latest_snapshot(max_seq=0).snapshot
        assert first is not None and first.chain_head == GENESIS_HEX
        assert report.ok and report.snapshots_checked == 2

    @needs("durable", "supports_chain")
    def test_a_restart_continues_the_chain(self) -> None:
        with self.opened() as log:
            append_all(log, history(10))
            before = log.verify_chain()
            head_at_close = log.chain_head_at(log.committed_seq)
        assert before.ok and before.head == head_at_close
        with self.opened() as log:
            assert log.chain_head_at(before.last_seq) == head_at_close
            append_all(log, [tick(50 + i) for i in range(5)])
            log.append(fill(77), wait=True)
            after = log.verify_chain()
            rows = [r for batch in log.iter_chain_rows() for r in batch]
        assert after.ok and after.events == before.events + 6
        assert after.last_seq == before.last_seq + 6
        # The first event after the restart chains on from the head the log closed with.
        first_new = rows[before.events]
        assert first_new[0] == before.last_seq + 1
        assert first_new[-1] == link(bytes.fromhex(head_at_close), first_new)

    @needs("durable", "supports_chain")
    def test_a_changed_row_is_found_at_its_seq(self) -> None:
        with self.opened() as log:
            append_all(log, history(15))
            intact = log.verify_chain()
        assert intact.ok
        self.tamper_event(9)
        with self.opened() as log:
            report = log.verify_chain()
        assert not report.ok and report.first_bad_seq == 9 and report.last_seq == 8
        assert "does not match its chain hash" in (report.reason or "")
