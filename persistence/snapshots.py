"""Periodic snapshots of the state store into the event log.

The kernel owns one :class:`Snapshotter` and calls ``maybe_snapshot(now_ns)`` from its
housekeeping thread every 0.25 s of wall time, and ``snapshot_now()`` on a clean stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from persistence.recorder import Recorder
from state.model import SCHEMA_VERSION

log = logging.getLogger(__name__)

#: Returns the store's ``(seq, state_dict)``: the seq of the last event applied and the
#: state as plain JSON-ready dicts, taken consistently (one engine-thread read).
StateSource = Callable[[], tuple[int, dict[str, Any]]]


class Snapshotter:
    """Saves a snapshot of ``source()`` into ``log`` every ``interval_s`` (default 300 s) and,
    with ``every_events``, also once that many events were applied since the last one
    (``seq_source`` tells the store's seq cheaply): a restore, or a step of time travel,
    then replays at most that many events after its snapshot.

    Not thread-safe: call it from the engine thread. A snapshot is skipped when nothing was
    applied since the last one. ``save_snapshot`` flushes the log first, so the snapshot never
    covers events that are not committed.
    """

    def __init__(
        self,
        log_: Recorder,
        source: StateSource,
        *,
        interval_s: float = 300.0,
        every_events: int = 0,
        seq_source: Callable[[], int] | None = None,
        last_seq: int = -1,
        schema_version: int = SCHEMA_VERSION,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        if every_events < 0 or (every_events and seq_source is None):
            raise ValueError(
                f"every_events must be >= 0 and needs a seq_source, got {every_events!r}"
            )
        self._every = every_events
        self._seq_source = seq_source
        self._log = log_
        self._source = source
        self._interval_ns = int(interval_s * 1e9)
        self._schema_version = schema_version
        self._last_at: int | None = None
        #: The seq the newest snapshot covers (-1: none known).
        self.last_seq = last_seq
        self.count = 0

    def maybe_snapshot(self, now_ns: int) -> int | None:
        """Snapshot if ``interval_s`` has passed since the last one (the first call sets the
        clock), or ``every_events`` events were applied since it; return the snapshot id, or
        None if none was taken."""
        if self._last_at is None:
            self._last_at = now_ns
        elif now_ns - self._last_at >= self._interval_ns:
            self._last_at = now_ns
            return self.snapshot_now(created_at_ns=now_ns)
        behind = self._seq_source() - max(self.last_seq, 0) if self._seq_source else 0
        if self._every and behind >= self._every:
            self._last_at = now_ns
            return self.snapshot_now(created_at_ns=now_ns)
        return None

    def snapshot_now(self, *, created_at_ns: int | None = None) -> int | None:
        """Snapshot now unless nothing changed since the last one; return the id or None."""
        seq, state = self._source()
        if seq == self.last_seq:
            return None
        snapshot_id = self._log.save_snapshot(
            seq, self._schema_version, state, created_at_ns=created_at_ns
        )
        self.last_seq = seq
        self.count += 1
        log.debug("snapshot %d covers seq %d", snapshot_id, seq)
        return snapshot_id
