"""Durable storage of events and state in DuckDB: the event log, snapshots, restore.

- :class:`EventLog` — the append-only event log of one engine (one DuckDB file), implementing
  :class:`state.journal.Journal`: seq assigned on append, group-committed by one writer thread,
  idempotent by ``event_id``, filtered reads, snapshots and run records.
- :func:`restore` — latest valid snapshot (migrated if older) + replay of the later events.
- :func:`full_replay` — every event folded from the initial state (the reference for restore).
- :class:`Snapshotter` — takes a snapshot every N seconds of clock time and on stop.

Imports ``streams`` and ``state`` only.
"""

from persistence.event_log import EventLog
from persistence.recorder import (
    CLEAN,
    CRASHED,
    RUNNING,
    RunRecord,
    SkippedSnapshot,
    Snapshot,
    SnapshotLookup,
)
from persistence.restore import RestoreResult, Snapshotter, full_replay, restore

__all__ = [
    "CLEAN",
    "CRASHED",
    "RUNNING",
    "EventLog",
    "RestoreResult",
    "RunRecord",
    "SkippedSnapshot",
    "Snapshot",
    "SnapshotLookup",
    "Snapshotter",
    "full_replay",
    "restore",
]
