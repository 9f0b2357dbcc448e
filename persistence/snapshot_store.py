"""Checksummed snapshots of the state, shared by both event-log backends.

A snapshot is stored as JSON text with its sha256 checksum and covers every event up to its
``seq``; it may only cover committed events. ``iter_snapshots`` goes newest first (by seq,
then id) and hands out an unusable one (checksum mismatch, JSON that is not an object, a seq
beyond the stored events) as a :class:`SkippedSnapshot`, so restore = newest usable snapshot +
the tail of events after it. Each snapshot also records the event log's chain head at its seq
(``chain_head``, :mod:`persistence.chain`), which ``verify_chain`` checks the log against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from persistence.codec import dumps
from persistence.recorder import SkippedSnapshot, Snapshot, SnapshotLookup
from streams.errors import EventError, PersistenceError

#: The columns of a stored snapshot, in the order of :data:`SnapshotValues`.
SNAPSHOT_COLUMNS = "seq, created_at, schema_version, state, checksum, chain_head"
#: One snapshot to store: seq, created_at (ns), schema_version, state (JSON text), checksum
#: and chain_head (hex), in :data:`SNAPSHOT_COLUMNS` order.
SnapshotValues = tuple[int, int, int, str, str, str]


def checksum(text: str) -> str:
    """The sha256 hex digest of ``text`` (UTF-8), as stored with each snapshot."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SnapshotStore:
    """The snapshot half of an event log (a mixin). The backend supplies
    ``_insert_snapshot``, ``_snapshot_heads`` and ``_snapshot_body``."""

    path: str
    _logger: ClassVar[logging.Logger]

    def flush(self) -> int:
        raise NotImplementedError

    if TYPE_CHECKING:  # supplied by persistence.chain.ChainAudit (a stub would shadow it)

        def chain_head_at(self, seq: int) -> str: ...

    def _insert_snapshot(self, values: SnapshotValues) -> int:
        """Store one snapshot (``values`` in :data:`SNAPSHOT_COLUMNS` order); its new id."""
        raise NotImplementedError

    def _snapshot_heads(self, max_seq: int | None) -> tuple[list[tuple[int, int]], int]:
        """``(id, seq)`` of the snapshots with ``seq <= max_seq``, newest first, and the
        highest stored event seq."""
        raise NotImplementedError

    def _snapshot_body(self, snapshot_id: int) -> tuple[Any, ...] | None:
        """``(created_at, schema_version, state JSON text, checksum, chain_head)`` of one
        snapshot."""
        raise NotImplementedError

    def _snapshot_chain_heads(self) -> list[tuple[int, int, str | None]]:
        """``(id, seq, chain_head)`` of every snapshot of this log."""
        raise NotImplementedError

    def save_snapshot(
        self,
        seq: int,
        schema_version: int,
        state: dict[str, Any],
        *,
        created_at_ns: int | None = None,
    ) -> int:
        """Store ``state`` as covering every event up to ``seq``; return the snapshot id.

        Flushes first: a snapshot may only cover committed events (PersistenceError if ``seq``
        is beyond them). The state is stored as JSON with its sha256 checksum, and with the
        chain head at ``seq`` (the hash of the last stored event at or below it).
        """
        committed = self.flush()
        if seq > committed or seq < 0:
            raise PersistenceError(
                f"snapshot seq {seq} is not covered by the log (last committed {committed})"
            )
        try:
            text = dumps(state, "snapshot state")
        except EventError as exc:
            raise PersistenceError(str(exc)) from exc
        created = time.time_ns() if created_at_ns is None else created_at_ns
        return self._insert_snapshot(
            (seq, created, schema_version, text, checksum(text), self.chain_head_at(seq))
        )

    def iter_snapshots(self, max_seq: int | None = None) -> Iterator[Snapshot | SkippedSnapshot]:
        """Snapshots newest first (by seq, then id); invalid ones come as SkippedSnapshot.

        A snapshot is invalid if its checksum fails, its JSON does not decode to an object, or
        it covers seqs beyond the stored events.
        """
        heads, stored_max = self._snapshot_heads(max_seq)
        for snapshot_id, seq in heads:
            if seq > stored_max:
                yield SkippedSnapshot(
                    snapshot_id, seq, f"covers seq {seq} beyond the last stored seq {stored_max}"
                )
                continue
            found = self._snapshot_body(snapshot_id)
            if found is None:
                continue
            created_at, version, text, digest, chain_head = found
            if checksum(text) != digest:
                yield SkippedSnapshot(snapshot_id, seq, "checksum mismatch")
                continue
            try:
                state = json.loads(text)
            except ValueError as exc:
                yield SkippedSnapshot(snapshot_id, seq, f"state does not decode: {exc}")
                continue
            if not isinstance(state, dict):
                yield SkippedSnapshot(snapshot_id, seq, "state is not a JSON object")
                continue
            yield Snapshot(snapshot_id, seq, created_at, version, state, digest, chain_head)

    def latest_snapshot(self, max_seq: int | None = None) -> SnapshotLookup:
        """The newest valid snapshot with ``seq <= max_seq`` and the newer ones skipped."""
        skipped: list[SkippedSnapshot] = []
        for item in self.iter_snapshots(max_seq):
            if isinstance(item, SkippedSnapshot):
                self._logger.warning("event log %s: skipping snapshot %s", self.path, item)
                skipped.append(item)
                continue
            return SnapshotLookup(item, tuple(skipped))
        return SnapshotLookup(None, tuple(skipped))
