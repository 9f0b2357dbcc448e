"""Opening and closing an event log, shared by both backends (a base of
:class:`persistence.group_commit.GroupCommitLog`).

- **One writer per store.** A store (a DuckDB file, a PostgreSQL stream) may be open once per
  process: a second open of the same file (DuckDB would silently share it) or stream would
  assign the same seqs, so ``open`` claims the store's key and ``close`` releases it.
- **Open.** The backend connects, creates or repairs its store and hands over what it holds
  (``_loaded``: max seq, the dedup ids, the chain head); then the writer thread starts.
- **Close.** The writer writes what is queued and stops (told to stop retrying after
  ``close_timeout_s``); the backend disconnects; events never written are reported.
- **Health.** ``healthy`` is False while writes fail or the writer is not running, and every
  waiter gets :class:`PersistenceError` (:meth:`LogLifecycle._raise_if_failing`).

A backend supplies ``_open_key``, ``_open_store``, ``_abort_open`` and ``_release_store``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Hashable, Iterable
from typing import ClassVar, Self

from persistence.chain import GENESIS, head_bytes
from persistence.group_writer import GroupWriter, H
from streams.errors import PersistenceError

__all__ = ["LogLifecycle"]

# The keys of the stores open in this process (one writer per store).
_OPEN_KEYS: set[Hashable] = set()
_OPEN_KEYS_LOCK = threading.Lock()


class LogLifecycle(GroupWriter[H]):
    """``open``/``close`` of an event log, loading what its store holds, and its health."""

    _writer_name: ClassVar[str]
    #: How long ``close`` waits for a writer told to stop retrying (None: as long as it takes).
    _stop_join_s: ClassVar[float | None] = None

    _label: str
    _holder: str
    _close_timeout: float
    _writer: threading.Thread | None
    _claimed: Hashable
    _open: bool
    _critical_ids: set[str]
    _recent_ids: set[str]
    _recent_order: collections.deque[str]
    _chain_head: bytes

    # -- the backend's hooks -----------------------------------------------------------------
    def _open_key(self) -> Hashable:
        """What identifies the store (one writer per key per process)."""
        raise NotImplementedError

    def _open_store(self) -> None:
        """Connect, create or repair the store, and call ``_loaded`` with what it holds."""
        raise NotImplementedError

    def _abort_open(self) -> None:
        """Release what a failed ``_open_store`` acquired."""
        raise NotImplementedError

    def _release_store(self) -> None:
        """Disconnect at ``close`` (the writer has stopped)."""
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> Self:
        """Open (creating if needed) the store, load seq and dedup ids, start the writer."""
        if self._open:
            return self
        key = self._claimed = self._open_key()
        with _OPEN_KEYS_LOCK:
            if key in _OPEN_KEYS:
                raise PersistenceError(f"{self._holder} is already open in this process")
            _OPEN_KEYS.add(key)
        try:
            self._open_store()
        except BaseException:
            self._abort_open()
            with _OPEN_KEYS_LOCK:
                _OPEN_KEYS.discard(key)
            raise
        self._closing = False
        self._open = True
        self._stop_retrying.clear()
        self._writer = threading.Thread(
            target=self._run_writer, name=self._writer_name, daemon=True
        )
        self._writer.start()
        return self

    def close(self) -> None:
        """Write and commit everything queued, stop the writer and release the store.

        Raises PersistenceError if queued events could not be written within
        ``close_timeout_s`` (they are lost; the store holds a consistent prefix).
        """
        if not self._open:
            return
        with self._lock:
            self._closing = True
            self._wake.notify()
        writer = self._writer
        if writer is not None:
            writer.join(self._close_timeout)
            if writer.is_alive():
                self._stop_retrying.set()
                writer.join(self._stop_join_s)
        with self._lock:
            unwritten = self._seq - self._committed
            self._open = False
            self._durable.notify_all()
        self._release_store()
        with _OPEN_KEYS_LOCK:
            _OPEN_KEYS.discard(self._claimed)
        if unwritten:
            raise PersistenceError(
                f"{self._label} closed with {unwritten} event(s) not written "
                f"(last committed seq {self._committed}): {self._error}"
            )

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loaded(
        self,
        last_seq: int,
        critical_ids: Iterable[str],
        recent: Iterable[str],
        chain_head: bytes = GENESIS,
    ) -> None:
        """Take what the store holds: its max seq, every critical id, the last
        ``dedup_window`` non-critical ids (``recent``, newest first) and the chain head."""
        self._chain_head = chain_head
        self._seq = self._committed = last_seq
        self._critical_ids = set(critical_ids)
        self._recent_order = collections.deque(reversed(list(recent)))
        self._recent_ids = set(self._recent_order)

    def _chain_head_of(self, last_seq: int, stored: bytes | None) -> bytes:
        """The head the next rows chain on from: the stored hash of the row at ``last_seq``
        (GENESIS for an empty log). A row without one (written outside the log) cannot be
        chained on: GENESIS, logged; ``verify_chain`` reports that row."""
        if last_seq and stored is None:
            self._logger.error(
                "event log %s: the last stored row (seq %d) has no chain hash; new rows chain "
                "on from the genesis hash and verify_chain will report seq %d",
                self.path,
                last_seq,
                last_seq,
            )
        return head_bytes(stored)

    # -- health ------------------------------------------------------------------------------
    def _raise_if_failing(self, seq: int, verb: str, done: str, reached: str) -> None:
        """For a waiter on ``seq`` (holding the lock): PersistenceError if writes are failing
        (``could not <verb> seq``, ``reached`` says how far they got) or the log closed
        (``closed before seq ... was <done>``)."""
        if self._error is not None:
            raise PersistenceError(
                f"{self._label} could not {verb} seq {seq} ({reached}): {self._error}"
            )
        if not self._open:
            raise PersistenceError(f"{self._label} closed before seq {seq} was {done}")

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self._open

    @property
    def healthy(self) -> bool:
        """False while writes are failing or the writer is not running: halt trading."""
        writer = self._writer
        return self._error is None and self._open and writer is not None and writer.is_alive()

    @property
    def last_error(self) -> str | None:
        """Why the last write failed, while the log is failing; None once a write succeeds."""
        return self._error
