"""The recorder contract: what every event-log backend (DuckDB, PostgreSQL) guarantees.

The kernel, restore, the snapshotter, the dashboard's history and the SSE endpoint talk to a
``Recorder`` only, so the storage backend is a config switch (``storage.backend``). One
contract test suite (``RecorderContract`` in ``tests/persistence/recorder_contract.py``, one
subclass per backend) runs against every backend, so both keep exactly the same guarantees:

- ``seq`` is assigned by ``append`` (synchronously: the returned event carries it); it has no
  gaps, and every commit covers a prefix of it, so a reader never sees seq ``n + 1`` before
  ``n``. After a restart ``seq`` continues at ``max(seq) + 1``.
- ``event_id`` is idempotent (``append`` -> None, no seq used): a critical event's id for
  ever; a non-critical one within the last ``dedup_window`` (default 200,000) non-critical
  events. Both backends check this in memory before assigning a seq. A non-critical duplicate
  older than the window is stored again by DuckDB (its file has no index on event_id: DuckDB
  keeps indexes wholly in memory, so that one grew for ever); PostgreSQL's unique index, on
  disk, still makes its writer drop it (its seq stays a hole).
- Critical events (and ``wait=True``) are durable before ``append`` returns; others within
  ``flush_interval_s``. A failed write is retried with backoff; meanwhile ``healthy`` is False
  and every waiter gets :class:`~streams.errors.PersistenceError`, never a false acknowledgement.
- Snapshots are checksummed; ``latest_snapshot`` skips (and reports) unusable ones, so
  restore = newest usable snapshot + the tail of events after it.
- Runs record how each engine run ended (``clean`` / ``crashed``).
- What reads of snapshots and runs hand out are the plain records below (:class:`Snapshot`,
  :class:`SkippedSnapshot`, :class:`SnapshotLookup`, :class:`RunRecord`, and the run
  statuses ``RUNNING``, ``CLEAN``, ``CRASHED``).
- Every stored event carries its link in a hash chain (:mod:`persistence.chain`: SHA-256 over
  the previous event's hash and the event's canonical bytes; per stream in PostgreSQL),
  computed on the writer thread; a snapshot records the chain head at its seq; the chain
  goes on across restarts, and ``verify_chain`` finds the first changed, missing, inserted
  or reordered row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from persistence.chain import ChainReport
from state.journal import EventLogReader, Journal

if TYPE_CHECKING:  # pandas costs ~0.4 s to import: only reads as frames need it
    pass

#: Backends selectable with ``storage.backend``.
BACKENDS = ("duckdb", "postgres")

# -- the plain records a Recorder hands out --------------------------------------------------
#: How a run is recorded: still running, ended cleanly, or found unfinished by a later run.
RUNNING, CLEAN, CRASHED = "running", "clean", "crashed"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stored state covering every event up to ``seq`` (checksum already verified), and the
    event log's chain head at ``seq`` (hex; None for a snapshot whose head is unknown)."""

    id: int
    seq: int
    created_at: int
    schema_version: int
    state: dict[str, Any]
    checksum: str
    chain_head: str | None = None


@dataclass(frozen=True, slots=True)
class SkippedSnapshot:
    """A snapshot that could not be used, and why (checksum, decoding, migration...)."""

    id: int
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class SnapshotLookup:
    """The newest usable snapshot (or None) and the newer ones that were skipped."""

    snapshot: Snapshot | None
    skipped: tuple[SkippedSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One engine run: when it started and ended, how it ended, its config hash and pid."""

    run_id: str
    started_at: int
    ended_at: int | None
    how: str
    config_hash: str | None
    pid: int | None


@runtime_checkable
class Recorder(Journal, EventLogReader, Protocol):
    """An event log: a :class:`~state.journal.Journal` and its reads
    (:class:`~state.journal.EventLogReader`), plus counts, snapshots and runs.

    ``path`` says where the log lives, for messages: a file path, or for PostgreSQL the DSN
    without its password plus ``#<stream>``.
    """

    path: str

    def open(self) -> Recorder:
        """Connect, load seq and the dedup ids, start the writer; returns self."""
        ...

    def close(self) -> None:
        """Write what is queued, stop the writer and disconnect."""
        ...

    @property
    def committed_seq(self) -> int:
        """The highest seq known to be durable."""
        ...

    @property
    def is_open(self) -> bool:
        """True between ``open`` and ``close``."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the last write failed (None once a write succeeds again)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters for the health endpoint and benchmarks."""
        ...

    def count(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> int:
        """How many stored events match."""
        ...

    def save_snapshot(
        self,
        seq: int,
        schema_version: int,
        state: dict[str, Any],
        *,
        created_at_ns: int | None = None,
    ) -> int:
        """Store a checksummed snapshot of the state covering events up to ``seq``."""
        ...

    def iter_snapshots(self, max_seq: int | None = None) -> Iterator[Snapshot | SkippedSnapshot]:
        """Snapshots newest first (with ``seq <= max_seq``); unusable ones as SkippedSnapshot."""
        ...

    def latest_snapshot(self, max_seq: int | None = None) -> SnapshotLookup:
        """The newest usable snapshot and the newer ones that were skipped."""
        ...

    def chain_head_at(self, seq: int) -> str:
        """The chain hash (hex) of the last stored event at or below ``seq``."""
        ...

    def verify_chain(self, batch_size: int = 50_000) -> ChainReport:
        """Recompute the hash chain over every stored event, in batches, and report the
        first row (and snapshot head) that does not match."""
        ...

    def start_run(self, config_hash: str, *, started_at_ns: int | None = None) -> str:
        """Record a run start (marking an unfinished earlier run ``crashed``); its id."""
        ...

    def end_run(self, run_id: str, how: str = ..., *, ended_at_ns: int | None = None) -> None:
        """Record how a run ended."""
        ...

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        ...
