"""An exclusive, expiring lease on a book in PostgreSQL: two nodes never trade the same book.

One row per book in ``leases(book, owner, epoch, expires_at)``. Every comparison with
``expires_at`` uses the *database's* clock (``clock_timestamp()``), never a node's, so nodes
with skewed clocks still agree on who holds a book.

- :meth:`BookLease.acquire` is one statement: insert the row, or take it over when it has
  expired, bumping ``epoch`` (a fencing token: each owner of a book has its own epoch).
- A renewer thread extends the lease every ``ttl/3``. The node also keeps a *local* deadline on
  the monotonic clock (the time of the last successful renewal's request + ttl - a margin):
  once it passes without a renewal, or a renewal finds the row gone to another owner,
  ``on_lost`` is called and the node must stop trading. The monotonic clock keeps running
  while a process is stopped (SIGSTOP, a long GC pause), so a node that wakes up after its
  lease expired knows it before it does anything.
- :meth:`BookLease.fence` runs inside every write transaction of the event log, just before
  COMMIT: it re-reads this node's row ``FOR SHARE``. A missing row (another owner, a new epoch,
  or expired) raises :class:`~streams.errors.LeaseLostError`, so the write fails. While the
  share lock is held a takeover (an UPDATE of the row) waits for that commit, so a stale node
  can never commit after a new owner's epoch has started: everything it committed is in the
  log before the new owner restores from it.
- :meth:`BookLease.release` expires the lease on a clean stop, so a standby takes over at once.

The SQL and the connection live in :mod:`persistence.pg.lease`; this module is the policy
(renewal, local deadline, what losing the lease means).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from persistence.pg.lease import (
    LeaseHolder,
    PostgresLeaseStore,
    WriteConnection,
    lock_for_commit,
)
from streams.errors import LeaseLostError, PersistenceError

log = logging.getLogger(__name__)

__all__ = ["BookLease", "LeaseHolder"]


class BookLease:
    """This node's lease on one book (a ``storage.stream`` of the shared PostgreSQL log).

    ``on_lost(reason)`` is called at most once, from the renewer thread, the event-log writer
    (through :meth:`fence`) or whoever calls :meth:`check`; it must not block for long (the
    node stops its engine and exits).
    """

    def __init__(
        self,
        dsn: str,
        book: str,
        owner: str,
        ttl_s: float,
        *,
        on_lost: Callable[[str], None] | None = None,
        margin_s: float | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        if not book or not owner:
            raise ValueError(f"book and owner must be non-empty, got {book!r} and {owner!r}")
        self.dsn = dsn
        self.book = book
        self.owner = owner
        self.ttl_s = float(ttl_s)
        self.margin_s = self.ttl_s * 0.2 if margin_s is None else float(margin_s)
        self.on_lost = on_lost
        self.epoch: int | None = None
        self.renewals = 0
        self.lost_reason: str | None = None
        self._deadline = 0.0  # monotonic; the lease counts as held locally until then
        # Never wait long on the row (a renewal must fail well before the local deadline),
        # nor on a stuck server.
        self._rows = PostgresLeaseStore(
            dsn,
            connect_timeout_s=max(int(self.ttl_s / 3), 1),
            lock_timeout_ms=min(max(int(self.margin_s * 1000 / 2), 50), 2000),
            statement_timeout_ms=min(max(int(self.ttl_s * 1000 / 3), 500), 5000),
        )
        self._lost_lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- acquiring -----------------------------------------------------------------------------
    def acquire(self, *, renew: bool = True) -> int | None:
        """Take the lease if it is free or expired; its epoch, or None if another node holds it.

        With ``renew`` (the default) a thread renews it every ``ttl/3`` from now on.
        """
        if self.epoch is not None and self.lost_reason is None:
            raise PersistenceError(
                f"lease on book {self.book!r} is already held (epoch {self.epoch})"
            )
        holder = self.holder()
        if holder is not None and holder.valid:
            return None  # cheap read first: do not lock the row of a live holder
        started = time.monotonic()
        epoch = self._rows.acquire(self.book, self.owner, self.ttl_s)
        if epoch is None:
            return None  # a live holder, or one committing right now; try again later
        self.epoch = epoch
        self.lost_reason = None
        self._deadline = started + self.ttl_s - self.margin_s
        log.info("lease on book %r acquired by %r, epoch %d", self.book, self.owner, self.epoch)
        if renew:
            self._start_renewer()
        return self.epoch

    def wait_acquire(self, stop: threading.Event, poll_s: float | None = None) -> int | None:
        """Poll until the lease is ours (its epoch) or ``stop`` is set (None): a standby node."""
        poll = poll_s if poll_s is not None else min(max(self.ttl_s / 4, 0.05), 1.0)
        while not stop.is_set():
            try:
                epoch = self.acquire()
            except PersistenceError as exc:
                log.warning("standby for book %r: %s; retrying", self.book, exc)
                epoch = None
            if epoch is not None:
                return epoch
            stop.wait(poll)
        return None

    def holder(self) -> LeaseHolder | None:
        """The book's current row (None if nobody ever took it)."""
        return self._rows.holder(self.book)

    # -- holding -------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        """True while the lease is ours and its local deadline has not passed."""
        return (
            self.epoch is not None
            and self.lost_reason is None
            and time.monotonic() < self._deadline
        )

    def check(self) -> bool:
        """:attr:`held`, calling ``on_lost`` the first time it is found False after acquire."""
        if self.held:
            return True
        if self.epoch is not None:
            self._lose(
                self.lost_reason
                or f"lease on book {self.book!r} (epoch {self.epoch}) not renewed in time"
            )
        return False

    def renew(self) -> bool:
        """Extend the lease once; False (and ``on_lost``) if it is no longer ours.

        Raises PersistenceError when the database cannot be reached (the caller retries until
        the local deadline).
        """
        if self.epoch is None:
            return False
        started = time.monotonic()
        if not self._rows.renew(self.book, self.owner, self.epoch, self.ttl_s):
            self._lose(self._taken_reason())
            return False
        self._deadline = started + self.ttl_s - self.margin_s
        self.renewals += 1
        return True

    def fence(self, conn: WriteConnection) -> None:
        """Inside a write transaction, before COMMIT: raise LeaseLostError unless still ours.

        Also bounds how long this transaction may sit idle (a node stopped mid-transaction
        would otherwise hold the share lock, and so block a takeover, forever).
        """
        epoch = self.epoch
        if epoch is None or not self.check():
            raise LeaseLostError(
                f"book {self.book!r}: node {self.owner!r} does not hold its lease"
                + (f" ({self.lost_reason})" if self.lost_reason else "")
            )
        idle_ms = max(int(self.ttl_s * 1000), 100)
        if lock_for_commit(conn, self.book, self.owner, epoch, idle_timeout_ms=idle_ms):
            return
        reason = (
            f"book {self.book!r}: node {self.owner!r} lost its lease (epoch {epoch}); write refused"
        )
        self._lose(reason)
        raise LeaseLostError(reason)

    # -- releasing -----------------------------------------------------------------------------
    def release(self) -> None:
        """Stop renewing and expire the lease now (clean stop): a standby takes over at once."""
        self._stop_renewer()
        epoch, self.epoch = self.epoch, None
        if epoch is not None and self.lost_reason is None:
            try:
                self._rows.release(self.book, self.owner, epoch)
            except PersistenceError as exc:
                log.warning("%s (it will expire)", exc)
        self.close()

    def close(self) -> None:
        """Stop renewing and disconnect, leaving the lease to expire by itself."""
        self._stop_renewer()
        self._rows.close()

    # -- internals -----------------------------------------------------------------------------
    def _start_renewer(self) -> None:
        self._stop_renewer()
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(self._stop,), name=f"lease-{self.book}", daemon=True
        )
        self._renewer.start()

    def _stop_renewer(self) -> None:
        self._stop.set()
        renewer, self._renewer = self._renewer, None
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(self.ttl_s)

    def _renew_loop(self, stop: threading.Event) -> None:
        interval = self.ttl_s / 3
        wait = interval
        while not stop.wait(wait):
            if not self.check():
                return
            try:
                if not self.renew():
                    return
                wait = interval
            except PersistenceError as exc:
                log.warning("%s; retrying until the lease's local deadline", exc)
                wait = interval / 3
            wait = max(min(wait, self._deadline - time.monotonic()), 0.0)

    def _taken_reason(self) -> str:
        try:
            holder = self.holder()
        except PersistenceError:
            holder = None
        now_held = f"; now held by {holder.describe()}" if holder is not None else ""
        return f"lease on book {self.book!r} (epoch {self.epoch}) lost{now_held}"

    def _lose(self, reason: str) -> None:
        with self._lost_lock:
            if self.lost_reason is not None:
                return
            self.lost_reason = reason
            self._stop.set()
        log.error("%s: this node must stop trading the book", reason)
        if self.on_lost is not None:
            self.on_lost(reason)
