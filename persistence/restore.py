"""Snapshots of the trading state and rebuilding it from the log: latest valid snapshot +
replay of the tail.

``restore`` is what the kernel runs on start; ``full_replay`` folds every event from the
initial state and is the reference ``restore`` must equal (the tests check both agree). The
kernel owns one :class:`Snapshotter` and calls ``maybe_snapshot(now_ns)`` from its
housekeeping thread every 0.25 s of wall time, and ``snapshot_now()`` on a clean stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from persistence.recorder import Recorder, SkippedSnapshot, Snapshot
from state import fold, migrations, model
from streams.errors import PersistenceError, SnapshotCorrupted

log = logging.getLogger(__name__)

#: Events decoded and folded per page while replaying.
REPLAY_BATCH = 50_000

#: Returns the store's ``(seq, state_dict)``: the seq of the last event applied and the
#: state as plain JSON-ready dicts, taken consistently (one engine-thread read).
StateSource = Callable[[], tuple[int, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """The restored ``state`` as of ``seq``; which snapshot it started from (``snapshot_seq``,
    0 if none), how many events were ``replayed`` after it, and the snapshots ``skipped``."""

    state: model.State
    seq: int
    snapshot_seq: int
    replayed: int
    skipped_snapshots: tuple[SkippedSnapshot, ...]


def _state_of(snapshot: Snapshot) -> model.State:
    """The snapshot's state, migrated to the current schema and validated."""
    data = snapshot.state
    if snapshot.schema_version != model.SCHEMA_VERSION:
        data = migrations.migrate(data, snapshot.schema_version)
    state = model.state_from_dict(data)
    # The checksum proves the text is what was written; this proves it is the state *at* the
    # seq it claims to cover (a snapshot row paired with another state would replay wrongly).
    covered = state.get("meta", {}).get("seq")
    if isinstance(covered, int) and not isinstance(covered, bool) and covered != snapshot.seq:
        raise SnapshotCorrupted(
            f"snapshot {snapshot.id} claims seq {snapshot.seq} but its state is at seq {covered}"
        )
    return state


def _replay(
    log_: Recorder, state: model.State, after: int, upto_seq: int | None
) -> tuple[model.State, int, int]:
    seq, count = after, 0
    for batch in log_.iter_batches(since_seq=after, until_seq=upto_seq, batch_size=REPLAY_BATCH):
        state = fold.replay(batch, state)
        seq = batch[-1].seq
        count += len(batch)
    return state, seq, count


def restore(log_: Recorder, *, upto_seq: int | None = None) -> RestoreResult:
    """The state after every event up to ``upto_seq`` (default: all committed events).

    Starts from the newest snapshot with ``seq <= upto_seq`` that passes its checksum, decodes,
    migrates (if written under an older schema version) and validates; snapshots that fail any
    of these are skipped for the one before them and reported in ``skipped_snapshots``. Then
    replays the events after it through ``state.fold``.
    """
    skipped: list[SkippedSnapshot] = []
    state, snapshot_seq = model.initial_state(), 0
    for item in log_.iter_snapshots(max_seq=upto_seq):
        if isinstance(item, SkippedSnapshot):
            skipped.append(item)
            continue
        try:
            state = _state_of(item)
        except PersistenceError as exc:
            skipped.append(SkippedSnapshot(item.id, item.seq, f"cannot be loaded: {exc}"))
            continue
        snapshot_seq = item.seq
        break
    for item in skipped:
        log.warning("restore from %s: skipped snapshot %s", log_.path, item)
    state, seq, replayed = _replay(log_, state, snapshot_seq, upto_seq)
    return RestoreResult(state, seq, snapshot_seq, replayed, tuple(skipped))


def full_replay(log_: Recorder, upto_seq: int | None = None) -> model.State:
    """The state from folding every event up to ``upto_seq`` over the initial state."""
    return _replay(log_, model.initial_state(), 0, upto_seq)[0]


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
        schema_version: int = model.SCHEMA_VERSION,
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
