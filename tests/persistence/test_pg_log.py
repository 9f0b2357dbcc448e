"""What only the PostgreSQL recorder has: versioned migrations, several streams sharing one
database with a gapless global order (gseq), the fencing hook, and a server restarted while
events are being appended. Real PostgreSQL servers (tests/services/postgres.py), no mocks.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import pytest

from persistence.pg import MIGRATIONS, SCHEMA_VERSION, PostgresEventLog, migrate
from persistence.pg.schema import GSEQ_LOCK
from streams.errors import LeaseLostError, PersistenceError
from streams.events import Event
from testkit.services.postgres import PostgresServer
from tests.persistence.builders import fill, tick


def _sql(dsn: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as con:
        return con.execute(sql, params).fetchall()  # type: ignore[arg-type]


def _wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


# -- migrations ------------------------------------------------------------------------------
def test_migrations_are_versioned_and_applied_once(pg_dsn: str) -> None:
    with PostgresEventLog(pg_dsn) as log:
        log.append(tick(1), wait=True)
    with PostgresEventLog(pg_dsn) as log:  # a second open applies nothing again
        assert log.count() == 1
    with psycopg.connect(pg_dsn) as con:  # nor does migrating from several sessions at once
        errors: list[BaseException] = []

        def again() -> None:
            try:
                with psycopg.connect(pg_dsn) as other:
                    assert migrate(other) == SCHEMA_VERSION
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=again) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]
    assert rows[-1][0] == SCHEMA_VERSION


def test_migration_2_chains_the_events_already_stored_in_every_stream(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    heads: dict[str, str] = {}
    for stream, n in (("a", 30), ("b", 12)):
        with PostgresEventLog(pg_dsn, stream=stream) as log:
            for i in range(n):
                log.append(fill(i) if i % 4 == 0 else tick(i))
            log.save_snapshot(log.flush() - 2, 1, {"meta": {"seq": n - 2}})
            heads[stream] = log.verify_chain().head
    hashes = _sql(pg_dsn, "SELECT stream, seq, chain_hash FROM events ORDER BY stream, seq")
    # Back to schema version 1, as a database written before the chain.
    with psycopg.connect(pg_dsn) as con:
        con.execute("ALTER TABLE events DROP COLUMN chain_hash")
        con.execute("ALTER TABLE snapshots DROP COLUMN chain_head")
        con.execute("DELETE FROM schema_migrations WHERE version = 2")

    with (
        caplog.at_level("WARNING", logger="persistence.pg.schema"),
        PostgresEventLog(pg_dsn, stream="a") as log,
    ):
        report = log.verify_chain()
        snapshot = log.latest_snapshot().snapshot
        log.append(fill(100), wait=True)
        assert log.verify_chain().ok
    assert "added the hash chain: 42 row(s) of 2 stream(s)" in caplog.text
    assert "2 snapshot(s) given their chain head" in caplog.text
    assert report.ok and report.head == heads["a"] and report.snapshots_checked == 1
    assert (
        snapshot is not None
        and snapshot.chain_head
        == _sql(
            pg_dsn, "SELECT encode(chain_hash, 'hex') FROM events WHERE stream = 'a' AND seq = 28"
        )[0][0]
    )
    with PostgresEventLog(pg_dsn, stream="b") as log:
        assert log.verify_chain().head == heads["b"]
    # The hashes computed by the migration are the ones written live.
    assert hashes == _sql(
        pg_dsn,
        "SELECT stream, seq, chain_hash FROM events WHERE NOT (stream = 'a' AND seq > 30) "
        "ORDER BY stream, seq",
    )


def test_a_database_newer_than_the_code_is_refused(pg_dsn: str) -> None:
    with PostgresEventLog(pg_dsn):
        pass
    with psycopg.connect(pg_dsn) as con:
        con.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, 'future')",
            [SCHEMA_VERSION + 1],
        )
    log = PostgresEventLog(pg_dsn)
    with pytest.raises(PersistenceError, match=f"version {SCHEMA_VERSION + 1} is newer"):
        log.open()
    assert not log.is_open


def test_one_stream_opens_once_per_process_and_names_are_checked(pg_dsn: str) -> None:
    with PostgresEventLog(pg_dsn, stream="a"):
        with pytest.raises(PersistenceError, match="already open"):
            PostgresEventLog(pg_dsn, stream="a").open()
        with PostgresEventLog(pg_dsn, stream="b") as other:  # another stream is fine
            assert other.is_open
    with pytest.raises(PersistenceError, match="stream"):
        PostgresEventLog(pg_dsn, stream="")


# -- several streams, one global order --------------------------------------------------------
def test_streams_share_a_gapless_global_order_in_commit_order(pg_dsn: str) -> None:
    streams, per_stream = ("node-a", "node-b", "node-c"), 200
    logs = {s: PostgresEventLog(pg_dsn, stream=s, flush_interval_s=0.005).open() for s in streams}
    observer = PostgresEventLog(pg_dsn, stream="dashboard").open()
    seen: list[int] = []
    skipped: list[tuple[int, int]] = []
    done = threading.Event()

    def produce(stream: str) -> None:
        log = logs[stream]
        for i in range(per_stream):
            event: Event = (
                fill(i, event_id=f"{stream}-{i}")
                if i % 7 == 0
                else tick(i, event_id=f"{stream}-{i}")
            )
            assert log.append(event, wait=event.CRITICAL or i % 25 == 0) is not None

    def poll() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for _, gseq, _ in observer.read_global(since_gseq=last):
                if gseq != last + 1:
                    skipped.append((last, gseq))
                last = gseq
                seen.append(gseq)
            if finished:
                return

    reader = threading.Thread(target=poll)
    reader.start()
    producers = [threading.Thread(target=produce, args=(s,)) for s in streams]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    for log in logs.values():
        log.flush()
    done.set()
    reader.join()
    for log in logs.values():
        log.close()

    total = len(streams) * per_stream
    assert not skipped, f"a reader saw gseq n+1 before n: {skipped[:5]}"
    assert seen == list(range(1, total + 1))
    rows = _sql(pg_dsn, "SELECT stream, seq, gseq, event_id FROM events ORDER BY gseq")
    assert [r[2] for r in rows] == list(range(1, total + 1))
    for stream in streams:
        mine = [r for r in rows if r[0] == stream]
        # In gseq (commit) order each stream's seq is 1..n: commits cover prefixes, in order.
        assert [r[1] for r in mine] == list(range(1, per_stream + 1))
        assert [r[3] for r in mine] == [f"{stream}-{i}" for i in range(per_stream)]
    page = observer.read_global(since_gseq=10, limit=5, topic="fills.>")
    fills_after_10 = [(r[0], r[2]) for r in rows if r[2] > 10 and _is_fill(r[3])]
    assert len(fills_after_10) > 5
    assert [(s, g) for s, g, _ in page] == fills_after_10[:5]
    assert all(e.topic.startswith("fills.") for _, _, e in page)
    observer.close()


def _is_fill(event_id: str) -> bool:
    return int(event_id.rsplit("-", 1)[1]) % 7 == 0


def test_open_waits_for_a_commit_left_in_flight_by_a_killed_writer(pg_dsn: str) -> None:
    with PostgresEventLog(pg_dsn) as log:
        log.append(fill(1), wait=True)
    # A writer killed right after sending COMMIT: the server still finishes that commit. Here
    # it is held open by hand, under the gseq lock every event commit takes.
    with psycopg.connect(pg_dsn) as orphan:
        orphan.execute("SELECT pg_advisory_xact_lock(%s)", [GSEQ_LOCK])
        orphan.execute(
            "INSERT INTO events (stream, seq, gseq, event_id, ts_event, ts_init, topic, type, "
            "schema_version, critical, payload) "
            "VALUES ('default', 2, 2, 'orphan', 1, 1, 'fills.sma', %s, 1, true, %s)",
            [fill(2).TYPE, json.dumps(fill(2).payload())],
        )
        opened: list[PostgresEventLog] = []
        opener = threading.Thread(target=lambda: opened.append(PostgresEventLog(pg_dsn).open()))
        opener.start()
        time.sleep(0.3)
        assert not opened, "open must wait for the in-flight commit"
    opener.join(10)  # leaving the block committed the orphan's transaction
    assert opened
    log = opened[0]
    try:
        assert log.last_seq == 2
        nxt = log.append(fill(3), wait=True)
        assert nxt is not None and nxt.seq == 3
        assert [e.event_id for e in log.read()][1] == "orphan"
    finally:
        log.close()


# -- fencing -------------------------------------------------------------------------------
def test_a_failing_fence_fails_the_write_and_stores_nothing(pg_dsn: str) -> None:
    lease = {"held": True, "calls": 0, "in_txn": True}

    def fence(con: psycopg.Connection) -> None:
        lease["calls"] += 1
        status = con.info.transaction_status
        lease["in_txn"] = lease["in_txn"] and status == psycopg.pq.TransactionStatus.INTRANS
        if not lease["held"]:
            raise LeaseLostError("node-a no longer holds the lease on stream 'default'")

    with PostgresEventLog(pg_dsn, fence=fence) as log:
        assert log.append(fill(1), wait=True) is not None
        lease["held"] = False
        with pytest.raises(PersistenceError, match="lease"):
            log.append(fill(2), wait=True)
        assert not log.healthy
        assert "LeaseLostError" in (log.last_error or "")
        assert _sql(pg_dsn, "SELECT seq FROM events") == [(1,)]
        with pytest.raises(LeaseLostError):
            log.start_run("cfg")
        assert _sql(pg_dsn, "SELECT count(*) FROM runs") == [(0,)]

        lease["held"] = True  # lease regained: the queued event is written, nothing lost
        _wait_until(lambda: log.healthy, 20.0, "the log to recover")
        assert log.flush() == 2
        assert [e.seq for e in log.read()] == [1, 2]
    assert lease["in_txn"] and int(lease["calls"]) >= 3


# -- a restart under load ------------------------------------------------------------------------
@pytest.mark.slow
def test_restart_under_load_loses_no_acknowledged_event(
    own_postgres_server: PostgresServer,
) -> None:
    dsn = own_postgres_server.create_database()
    log = PostgresEventLog(dsn, flush_interval_s=0.01, close_timeout_s=30.0).open()
    acked: list[tuple[int, str]] = []
    refused: list[str] = []
    stop = threading.Event()

    def produce(name: str) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            log.append(tick(i, event_id=f"{name}-tick-{i}"))
            try:
                stored = log.append(fill(i, event_id=f"{name}-fill-{i}"), wait=True)
            except PersistenceError as exc:  # failing loudly is allowed, a false ack is not
                refused.append(str(exc))
                time.sleep(0.01)
                continue
            assert stored is not None
            acked.append((stored.seq, stored.event_id))

    producers = [threading.Thread(target=produce, args=(f"p{n}",)) for n in range(3)]
    for p in producers:
        p.start()
    try:
        _wait_until(lambda: len(acked) > 50, 30.0, "appends before the restart")
        own_postgres_server.stop("immediate")
        _wait_until(lambda: not log.healthy, 30.0, "the log to notice the outage")
        time.sleep(1.5)  # producers released by the last commit before the stop record it
        acked_while_down = len(acked)
        time.sleep(0.5)
        with pytest.raises(PersistenceError):
            log.count()
        assert len(acked) == acked_while_down, "an append was acknowledged while PG was down"
        assert log.last_error
        own_postgres_server.start()
        _wait_until(lambda: log.healthy, 30.0, "the log to recover after the restart")
        _wait_until(lambda: len(acked) > acked_while_down + 50, 30.0, "appends after restart")
    finally:
        stop.set()
        for p in producers:
            p.join()
    last = log.flush()
    log.close()

    assert refused, "appends while the server was down must fail loudly"
    rows = dict(_sql(dsn, "SELECT seq, event_id FROM events"))
    assert sorted(rows) == list(range(1, last + 1)), "seq has gaps"
    assert len(set(rows.values())) == len(rows), "an event was stored twice"
    lost = [(s, e) for s, e in acked if rows.get(s) != e]
    assert not lost, f"acknowledged but lost: {lost[:5]}"
    gseqs = [g for (g,) in _sql(dsn, "SELECT gseq FROM events ORDER BY gseq")]
    assert gseqs == list(range(1, len(rows) + 1))
