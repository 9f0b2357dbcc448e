"""Rebuilding the trading state from the log: latest valid snapshot + replay of the tail.

``restore`` is what the kernel runs on start; ``full_replay`` folds every event from the
initial state and is the reference ``restore`` must equal (the tests check both agree).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from persistence.recorder import Recorder
from persistence.records import SkippedSnapshot, Snapshot
from state import fold, migrations, model
from streams.errors import PersistenceError, SnapshotCorrupted

log = logging.getLogger(__name__)

#: Events decoded and folded per page while replaying.
REPLAY_BATCH = 50_000


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
