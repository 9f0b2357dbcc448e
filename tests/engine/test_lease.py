"""The book lease against a real PostgreSQL server: exclusive, expiring, renewed, fencing.

Times are short (ttl 2 s) so the whole file runs in seconds, yet a renewal may come ~1 s late
on a busy machine without losing the lease.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from engine.lease import BookLease
from persistence.pg import PostgresEventLog
from streams.errors import LeaseLostError, PersistenceError
from tests.factories import order_submitted

TTL = 2.0


@pytest.fixture
def leases(pg_dsn: str) -> Iterator[list[BookLease]]:
    """BookLeases made by the test, closed after it."""
    made: list[BookLease] = []
    yield made
    for lease in made:
        lease.close()


def make(
    dsn: str, made: list[BookLease], owner: str, book: str = "alpha", **kw: object
) -> BookLease:
    lease = BookLease(dsn, book, owner, kw.pop("ttl_s", TTL), **kw)  # type: ignore[arg-type]
    made.append(lease)
    return lease


def row(dsn: str, book: str = "alpha") -> tuple[str, int]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT owner, epoch FROM leases WHERE book = %s", (book,)).fetchone()
    assert found is not None
    return found[0], found[1]


def test_acquire_is_exclusive_per_book(pg_dsn: str, leases: list[BookLease]) -> None:
    a = make(pg_dsn, leases, "n1")
    b = make(pg_dsn, leases, "n2")
    assert a.acquire() == 1
    assert b.acquire() is None
    holder = b.holder()
    assert holder is not None and holder.owner == "n1" and holder.epoch == 1 and holder.valid
    assert "'n1'" in holder.describe()
    # Another book is independent.
    assert make(pg_dsn, leases, "n2", book="beta").acquire() == 1
    assert a.held and not b.held


def test_concurrent_acquire_has_one_winner(pg_dsn: str, leases: list[BookLease]) -> None:
    contenders = [make(pg_dsn, leases, f"n{i}") for i in range(6)]
    for lease in contenders:
        lease.holder()  # connect (and create the table) before the race
    results: list[int | None] = [None] * len(contenders)
    barrier = threading.Barrier(len(contenders))

    def race(i: int) -> None:
        barrier.wait()
        results[i] = contenders[i].acquire(renew=False)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(contenders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, epoch in enumerate(results) if epoch is not None]
    assert len(winners) == 1
    assert row(pg_dsn) == (f"n{winners[0]}", 1)


def test_expired_lease_is_taken_over_with_a_new_epoch(pg_dsn: str, leases: list[BookLease]) -> None:
    lost: list[str] = []
    a = make(pg_dsn, leases, "n1", on_lost=lost.append)
    b = make(pg_dsn, leases, "n2")
    assert a.acquire(renew=False) == 1
    assert b.acquire() is None
    time.sleep(TTL + 0.1)
    assert b.acquire() == 2
    assert row(pg_dsn) == ("n2", 2)
    assert not a.renew()  # the old owner cannot extend what is no longer its lease
    assert a.acquire() is None


def test_renewal_keeps_the_lease(pg_dsn: str, leases: list[BookLease]) -> None:
    lost: list[str] = []
    a = make(pg_dsn, leases, "n1", on_lost=lost.append)
    b = make(pg_dsn, leases, "n2")
    assert a.acquire() == 1
    time.sleep(TTL * 2.5)
    assert b.acquire() is None
    assert a.held and a.renewals >= 4 and not lost
    assert row(pg_dsn) == ("n1", 1)


def test_fence_passes_for_the_owner_and_refuses_after_takeover(
    pg_dsn: str, leases: list[BookLease]
) -> None:
    lost: list[str] = []
    a = make(pg_dsn, leases, "n1", on_lost=lost.append)
    b = make(pg_dsn, leases, "n2")
    assert a.acquire(renew=False) == 1
    with psycopg.connect(pg_dsn) as conn:
        with conn.transaction():
            a.fence(conn)
        time.sleep(TTL + 0.1)
        assert b.acquire() == 2
        with (
            pytest.raises(LeaseLostError, match=r"lost its lease|does not hold"),
            conn.transaction(),
        ):
            a.fence(conn)
    assert len(lost) == 1 and "alpha" in lost[0]


def test_fence_refuses_in_the_database_even_if_the_node_thinks_it_holds(
    pg_dsn: str, leases: list[BookLease]
) -> None:
    """A node whose local view is stale (margin 0, clock not yet past): the row decides."""
    a = make(pg_dsn, leases, "n1", margin_s=-60.0)  # the local deadline never passes
    b = make(pg_dsn, leases, "n2")
    assert a.acquire(renew=False) == 1
    time.sleep(TTL + 0.1)
    assert b.acquire() == 2
    assert a.held  # locally it still believes so
    with (
        psycopg.connect(pg_dsn) as conn,
        pytest.raises(LeaseLostError, match="epoch 1"),
        conn.transaction(),
    ):
        a.fence(conn)
    assert not a.held


def test_takeover_waits_for_an_in_flight_fenced_commit(
    pg_dsn: str, leases: list[BookLease]
) -> None:
    """The fence's share lock makes a takeover wait until the old owner's commit is done, so
    nothing the old owner commits can land after the new owner's epoch starts."""
    ttl_a = 3.0  # the old owner's transaction may idle for up to ttl_a (the fence sets that)
    a = make(pg_dsn, leases, "n1", ttl_s=ttl_a, margin_s=-60.0)
    b = make(pg_dsn, leases, "n2", ttl_s=20.0)  # lock_timeout 2 s: it may wait for the commit
    b.holder()
    with psycopg.connect(pg_dsn) as admin:
        admin.execute("CREATE TABLE writes (epoch bigint, at timestamptz)")
        admin.commit()
    before = time.monotonic()
    assert a.acquire(renew=False) == 1
    after = time.monotonic()  # the row expires between before + ttl_a and after + ttl_a
    time.sleep(max(0.0, before + ttl_a - 1.0 - time.monotonic()))
    acquired_at: list[float] = []
    with psycopg.connect(pg_dsn) as conn:
        with conn.transaction():
            a.fence(conn)  # the lease is still valid here (for about 1 s more)
            # Meanwhile it expires; a takeover now must wait for this commit.
            time.sleep(max(0.0, after + ttl_a + 0.2 - time.monotonic()))

            def take() -> None:
                epoch = b.acquire(renew=False)
                acquired_at.append(time.monotonic())
                assert epoch == 2

            taker = threading.Thread(target=take)
            taker.start()
            time.sleep(0.3)
            assert not acquired_at, "takeover went through during the old owner's commit"
            conn.execute("INSERT INTO writes VALUES (1, clock_timestamp())")
            committed_at = time.monotonic()
        taker.join(5)
    assert acquired_at and acquired_at[0] >= committed_at


def test_event_log_write_is_refused_by_the_fence_after_takeover(
    pg_dsn: str, leases: list[BookLease]
) -> None:
    """The PostgreSQL log of a node that lost its book (but does not know it yet) can no longer
    commit: the order stays unacknowledged and never reaches the log."""
    lost: list[str] = []
    a = make(pg_dsn, leases, "n1", margin_s=-60.0, on_lost=lost.append)
    b = make(pg_dsn, leases, "n2")
    assert a.acquire(renew=False) == 1
    log = PostgresEventLog(pg_dsn, stream="alpha", fence=a.fence, close_timeout_s=0.5).open()
    try:
        assert log.append(order_submitted(order_id="o-1"), wait=True) is not None
        time.sleep(TTL + 0.1)
        assert b.acquire() == 2
        with pytest.raises(PersistenceError):
            log.append(order_submitted(order_id="o-2"), wait=True)
        assert not log.healthy and "LeaseLostError" in (log.last_error or "")
    finally:
        with contextlib.suppress(PersistenceError):
            log.close()  # the refused order cannot be written: close gives up on it
    assert lost and "write refused" in lost[0]
    with PostgresEventLog(pg_dsn, stream="alpha") as reader:
        assert [e.order_id for e in reader.read(types=["order_submitted"])] == ["o-1"]  # type: ignore[attr-defined]


def test_lease_taken_while_held_calls_on_lost(pg_dsn: str, leases: list[BookLease]) -> None:
    """Someone forces the row over (an operator, or a partition seen from the other side)."""
    lost = threading.Event()
    a = make(pg_dsn, leases, "n1", on_lost=lambda reason: lost.set())
    assert a.acquire() == 1
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("UPDATE leases SET owner = 'n2', epoch = 2 WHERE book = 'alpha'")
    assert lost.wait(TTL * 2)
    assert a.lost_reason is not None and "'n2'" in a.lost_reason
    assert not a.held


def test_unreachable_renewal_loses_the_lease_by_the_local_deadline(
    pg_dsn: str, leases: list[BookLease]
) -> None:
    """Renewals that cannot get through (the row is locked away) end at the local deadline."""
    lost = threading.Event()
    a = make(pg_dsn, leases, "n1", on_lost=lambda reason: lost.set())
    assert a.acquire() == 1
    with psycopg.connect(pg_dsn) as blocker:
        blocker.execute("SELECT * FROM leases WHERE book = 'alpha' FOR UPDATE")
        started = time.monotonic()  # no renewal gets through from here on
        assert lost.wait(TTL * 2)
        elapsed = time.monotonic() - started
        blocker.rollback()
    assert elapsed < TTL * 1.5  # about when the local deadline (ttl - margin) passed
    assert a.lost_reason is not None and "not renewed in time" in a.lost_reason


def test_release_hands_over_at_once(pg_dsn: str, leases: list[BookLease]) -> None:
    a = make(pg_dsn, leases, "n1")
    b = make(pg_dsn, leases, "n2")
    assert a.acquire() == 1
    assert b.acquire() is None
    a.release()
    assert b.acquire() == 2
    assert row(pg_dsn) == ("n2", 2)
    # Re-acquiring after a release is a new epoch too.
    b.release()
    assert make(pg_dsn, leases, "n1").acquire() == 3


def test_standby_waits_then_acquires(pg_dsn: str, leases: list[BookLease]) -> None:
    a = make(pg_dsn, leases, "n1")
    standby = make(pg_dsn, leases, "n2")
    assert a.acquire() == 1
    stop = threading.Event()
    got: list[int | None] = []
    waiter = threading.Thread(target=lambda: got.append(standby.wait_acquire(stop)))
    waiter.start()
    time.sleep(TTL * 1.5)
    assert not got  # a live holder keeps it
    a.release()
    waiter.join(TTL * 2)
    assert got == [2]
    # A standby told to stop gives up without the lease.
    other = make(pg_dsn, leases, "n3")
    stop2 = threading.Event()
    stop2.set()
    assert other.wait_acquire(stop2) is None
