"""Plain records the event log hands out: snapshots, skipped snapshots, runs (and the run
statuses ``RUNNING``, ``CLEAN``, ``CRASHED``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
