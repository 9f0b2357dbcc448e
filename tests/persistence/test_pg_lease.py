"""The ``leases`` rows of a shared PostgreSQL log (persistence/pg/lease.py), on a real server.

The lease policy (renewer, local deadline, on_lost) is tested in tests/engine/test_lease.py;
these tests pin the row-level API it stands on.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from persistence.pg import PostgresEventLog
from persistence.pg.lease import PostgresLeaseStore, books_and_leases, lock_for_commit
from streams.errors import PersistenceError
from tests.persistence.builders import tick


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PostgresLeaseStore]:
    """A lease store with the timeouts a 3 s lease would use."""
    made = PostgresLeaseStore(
        pg_dsn, connect_timeout_s=1, lock_timeout_ms=300, statement_timeout_ms=1000
    )
    yield made
    made.close()


def test_acquire_renew_release_follow_owner_and_epoch(store: PostgresLeaseStore) -> None:
    assert store.holder("alpha") is None
    assert store.acquire("alpha", "n1", 30.0) == 1
    assert store.acquire("alpha", "n2", 30.0) is None  # a live holder keeps it
    holder = store.holder("alpha")
    assert holder is not None and (holder.owner, holder.epoch, holder.valid) == ("n1", 1, True)
    assert store.renew("alpha", "n1", 1, 30.0)
    assert not store.renew("alpha", "n2", 1, 30.0)  # not n2's
    assert not store.renew("alpha", "n1", 2, 30.0)  # not that epoch
    store.release("alpha", "n1", 1)
    released = store.holder("alpha")
    assert released is not None and not released.valid
    assert "expired at" in released.describe()
    assert not store.renew("alpha", "n1", 1, 30.0)  # an expired lease is not renewed
    assert store.acquire("alpha", "n2", 30.0) == 2  # the takeover is a new epoch


def test_lock_for_commit_is_true_only_for_the_current_owner(
    pg_dsn: str, store: PostgresLeaseStore
) -> None:
    assert store.acquire("alpha", "n1", 30.0) == 1
    with psycopg.connect(pg_dsn) as writer:
        assert lock_for_commit(writer, "alpha", "n1", 1, idle_timeout_ms=4000)
        shown = writer.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        assert shown is not None and shown[0] == "4s"  # bounded for this transaction only
        writer.rollback()
        assert not lock_for_commit(writer, "alpha", "n1", 2, idle_timeout_ms=4000)
        assert not lock_for_commit(writer, "alpha", "n2", 1, idle_timeout_ms=4000)
        writer.rollback()
        shown = writer.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        assert shown is not None and shown[0] == "0"


def test_a_takeover_waits_for_the_share_lock(pg_dsn: str, store: PostgresLeaseStore) -> None:
    """While a writer holds the row FOR SHARE, a takeover times out instead of slipping in."""
    assert store.acquire("alpha", "n1", 30.0) == 1
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("UPDATE leases SET expires_at = clock_timestamp() + interval '1 second'")
    with psycopg.connect(pg_dsn) as writer:
        assert lock_for_commit(writer, "alpha", "n1", 1, idle_timeout_ms=10_000)
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_sleep(1.2)")  # the lease has expired, but is share-locked
        assert store.acquire("alpha", "n2", 30.0) is None  # lock_timeout: try again later
        writer.commit()
    assert store.acquire("alpha", "n2", 30.0) == 2


def test_books_and_leases_lists_streams_then_leases(pg_dsn: str, store: PostgresLeaseStore) -> None:
    with PostgresEventLog(pg_dsn, stream="alpha") as log:
        log.append(tick(1), wait=True)
    books, leases = books_and_leases(pg_dsn)
    assert (books, leases) == (["alpha"], {})  # no leases table yet
    assert store.acquire("beta", "n2", 30.0) == 1
    books, leases = books_and_leases(pg_dsn)
    assert books == ["alpha", "beta"]  # a leased book with no events yet is a book too
    assert set(leases) == {"beta"}
    assert (leases["beta"].owner, leases["beta"].epoch) == ("n2", 1)
    assert 0 < leases["beta"].left_s <= 30.0


def test_an_unreachable_database_is_a_persistence_error_naming_the_book() -> None:
    dsn = "host=127.0.0.1 port=1 dbname=none user=none"
    store = PostgresLeaseStore(
        dsn, connect_timeout_s=1, lock_timeout_ms=50, statement_timeout_ms=500
    )
    with pytest.raises(PersistenceError, match="cannot acquire the lease on book 'alpha'"):
        store.acquire("alpha", "n1", 3.0)
    with pytest.raises(PersistenceError, match="cannot read the lease of book 'alpha'"):
        store.holder("alpha")
    with pytest.raises(PersistenceError, match="cannot read books and leases"):
        books_and_leases(dsn)
