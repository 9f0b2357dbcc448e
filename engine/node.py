"""A scale-out engine node: one Kernel trading one book while it holds that book's lease.

``seamless run`` with ``storage.backend: postgres`` runs an :class:`EngineNode`. Before it opens
the shared log, the node takes the lease on ``storage.stream`` (its book of accounts and
strategies) as ``cluster.node_id`` (default ``<hostname>-<pid>``). If another node holds it,
the node fails naming the holder, or with ``cluster.standby`` waits until the lease expires or
is released, then restores the book from the log, reconciles with the broker and trades on.

Two guards keep a node that lost its lease (partitioned, paused, too slow to renew) from
trading:

- the event log's write transactions call :meth:`BookLease.fence`, so nothing it publishes
  after a new owner's epoch began can be committed; orders are critical events, committed
  before the bus delivers them to the broker, so a fenced-out node cannot send an order;
- a gate, the first subscriber of every event, checks the lease's local (monotonic) deadline
  before anything, the broker included, sees the event: a node resumed after a SIGSTOP longer
  than the TTL stops at its very next event, even one committed just before the pause.

On losing the lease the node halts for good: it holds its engine thread, says why on stderr
and exits with :data:`EXIT_LEASE_LOST` at once. It does not record a ``halt`` command: the
book belongs to the next owner now (which would restore that halt and not trade), and it could
not be committed anyway. Each acquisition is recorded as a ``state_changed`` event on
``cluster.lease`` (book, owner, epoch), committed through the fence, so the log shows which
node traded the book from which seq on (and the dashboards show the book's owner).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from engine.config import SeamlessConfig
from engine.lease import BookLease
from streams import topics
from streams.errors import ConfigError, LeaseHeldError
from streams.events import Event

if TYPE_CHECKING:
    from engine.kernel import Kernel

#: Exit status of a node that lost its book's lease (it stopped trading at once).
EXIT_LEASE_LOST = 3
#: The state path where each owner records its epoch.
LEASE_PATH = "cluster.lease"


def node_owner(config: SeamlessConfig) -> str:
    """This node's name: ``cluster.node_id``, or ``<hostname>-<pid>``."""
    return config.cluster.node_id or f"{socket.gethostname()}-{os.getpid()}"


def fenced_dsn(dsn: str, ttl_s: float) -> str:
    """``dsn`` whose sessions may not sit idle inside a transaction for longer than the TTL.

    A node stopped in the middle of a write transaction would otherwise hold its locks (the
    event log's global commit-order lock among them) until it resumed, stalling every node.
    """
    option = f"-c idle_in_transaction_session_timeout={max(int(ttl_s * 1000), 100)}"
    existing = str(conninfo_to_dict(dsn).get("options") or "")
    return make_conninfo(dsn, options=f"{existing} {option}".strip())


class EngineNode:
    """Runs one book's engine under its lease (see the module docstring).

    ``prepare(kernel)`` is called before the kernel starts (the CLI attaches its event printer
    there); ``exit_process`` ends the process when the lease is lost (``os._exit``: no clean
    stop, the book is someone else's now).
    """

    def __init__(
        self,
        config: SeamlessConfig,
        *,
        prepare: Callable[[Kernel], None] | None = None,
        err: TextIO | None = None,
        exit_process: Callable[[int], None] = os._exit,
    ) -> None:
        if config.storage.backend != "postgres":
            raise ConfigError(
                f"an engine node needs storage.backend 'postgres', got {config.storage.backend!r}"
            )
        self.owner = node_owner(config)
        self.book = config.storage.stream
        ttl = config.cluster.lease_ttl_s
        storage = dataclasses.replace(
            config.storage, postgres_dsn=fenced_dsn(config.storage.postgres_dsn, ttl)
        )
        self.config = dataclasses.replace(config, storage=storage)
        self.lease = BookLease(
            config.storage.postgres_dsn, self.book, self.owner, ttl, on_lost=self._on_lost
        )
        self.kernel: Kernel | None = None
        self.epoch: int | None = None
        self._prepare = prepare
        self._err = err or sys.stderr
        self._exit = exit_process
        self._lost = threading.Event()
        self._lost_lock = threading.Lock()

    def run(self, done: threading.Event) -> int:
        """Take the lease (or wait for it), trade until ``done`` is set, stop cleanly and hand
        the lease over; the exit status."""
        epoch = self._take_lease(done)
        if epoch is None:
            self.lease.close()
            self._say(f"node {self.owner!r} stopped before it got book {self.book!r}")
            return 0
        self.epoch = epoch
        from engine.kernel import Kernel

        try:
            kernel = Kernel.from_config(self.config, fence=self.lease.fence)
        except BaseException:
            self.lease.release()
            raise
        self.kernel = kernel
        try:
            # First subscriber: it sees every event before the broker or anyone else does.
            kernel.bus.subscribe(topics.ALL_TOPICS, self._gate, name="cluster.lease-gate")
            if self._prepare is not None:
                self._prepare(kernel)
            kernel.store.update_state(
                LEASE_PATH,
                {"book": self.book, "owner": self.owner, "epoch": epoch},
                {"ttl_s": self.lease.ttl_s},
                actor="engine",
            )
            kernel.start()
            self._say(
                f"node {self.owner!r} trading book {self.book!r} (lease epoch {epoch}) "
                f"on {kernel.log.path} (Ctrl-C to stop)"
            )
            done.wait()
        finally:
            try:
                kernel.stop()
            finally:
                self.lease.release()
        self._say(f"node {self.owner!r} stopped cleanly; book {self.book!r} released")
        return 0

    # -- internals -----------------------------------------------------------------------------
    def _take_lease(self, done: threading.Event) -> int | None:
        epoch = self.lease.acquire()
        if epoch is not None:
            return epoch
        holder = self.lease.holder()
        held_by = holder.describe() if holder is not None else "another node"
        if holder is not None and holder.owner == self.owner:
            held_by += " (an earlier run of this node: wait for it to expire)"
        if not self.config.cluster.standby:
            self.lease.close()
            raise LeaseHeldError(
                f"book {self.book!r} (storage.stream) is leased by {held_by}; node "
                f"{self.owner!r} will not trade it (set cluster.standby: true to wait for it)"
            )
        self._say(f"node {self.owner!r} standing by for book {self.book!r}, held by {held_by}")
        return self.lease.wait_acquire(done)

    def _gate(self, event: Event) -> None:
        """Engine thread, before every other subscriber: no lease, no delivery."""
        if self.lease.held and not self._lost.is_set():
            return
        self.lease.check()  # calls _on_lost (which exits) the first time
        self._on_lost(self.lease.lost_reason or "lease not held")
        threading.Event().wait()  # hold the engine thread: nothing else is delivered

    def _on_lost(self, reason: str) -> None:
        with self._lost_lock:
            if self._lost.is_set():
                return
            self._lost.set()
        self._say(
            f"node {self.owner!r} lost the lease on book {self.book!r}: {reason}; "
            f"trading halted, exiting with status {EXIT_LEASE_LOST}"
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        self._exit(EXIT_LEASE_LOST)

    def _say(self, message: str) -> None:
        print(f"seamless: {message}", file=self._err, flush=True)
