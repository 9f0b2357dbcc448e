"""Restore = latest valid snapshot (migrated if older) + tail, and it equals a full replay."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from persistence import EventLog, Snapshotter, full_replay, restore
from state import fold, model
from streams.events import Event
from tests.persistence.builders import every_event_type, fill, tick
from tests.persistence.contract import history


def _append_all(log: EventLog, events: list[Event]) -> None:
    for e in events:
        log.append(e)
    log.flush()


def _snapshot(log: EventLog) -> int:
    seq = log.flush()
    state = full_replay(log, upto_seq=seq)
    return log.save_snapshot(seq, model.SCHEMA_VERSION, model.state_to_dict(state))


def test_restore_of_an_empty_log_is_the_initial_state(event_log: EventLog) -> None:
    result = restore(event_log)
    assert result.state == model.initial_state()
    assert (result.seq, result.snapshot_seq, result.replayed) == (0, 0, 0)


def test_snapshot_plus_tail_equals_full_replay(event_log: EventLog) -> None:
    _append_all(event_log, history(50))
    snapshot_seq = _snapshot(event_log) and event_log.committed_seq
    _append_all(event_log, history(30)[1:] + every_event_type())

    result = restore(event_log)

    assert result.snapshot_seq == snapshot_seq
    assert result.replayed == event_log.last_seq - snapshot_seq
    assert result.seq == event_log.last_seq
    assert result.state == full_replay(event_log)
    assert result.state == fold.replay(event_log.read())
    assert result.skipped_snapshots == ()


def test_restore_upto_seq_uses_only_older_snapshots(event_log: EventLog) -> None:
    _append_all(event_log, history(20))
    _snapshot(event_log)
    _append_all(event_log, [tick(100 + i) for i in range(10)])
    _snapshot(event_log)
    upto = event_log.last_seq - 5

    result = restore(event_log, upto_seq=upto)

    assert result.seq == upto
    assert result.snapshot_seq < upto
    assert result.state == full_replay(event_log, upto_seq=upto)


def test_corrupt_snapshot_is_skipped_for_the_previous_one(db_path: Path) -> None:
    with EventLog(db_path) as log:
        _append_all(log, history(20))
        _snapshot(log)
        good_seq = log.committed_seq
        _append_all(log, [tick(100 + i) for i in range(10)])
        bad_id = _snapshot(log)
    con = duckdb.connect(str(db_path))
    con.execute(
        "UPDATE snapshots SET state = json_merge_patch(state, '{\"pnl\": null}') WHERE id = ?",
        [bad_id],
    )
    con.close()

    with EventLog(db_path) as log:
        lookup = log.latest_snapshot()
        result = restore(log)
        expected = full_replay(log)

    assert lookup.snapshot is not None and lookup.snapshot.seq == good_seq
    assert [(s.id, s.reason) for s in lookup.skipped] == [(bad_id, "checksum mismatch")]
    assert result.snapshot_seq == good_seq
    assert [s.id for s in result.skipped_snapshots] == [bad_id]
    assert result.state == expected


def test_snapshot_that_fails_validation_is_skipped(event_log: EventLog) -> None:
    _append_all(event_log, history(10))
    event_log.save_snapshot(event_log.committed_seq, model.SCHEMA_VERSION, {"not": "a state"})

    result = restore(event_log)

    assert result.snapshot_seq == 0
    assert len(result.skipped_snapshots) == 1
    assert "cannot be loaded" in result.skipped_snapshots[0].reason
    assert result.state == full_replay(event_log)


def test_v1_snapshot_is_migrated_on_restore(event_log: EventLog) -> None:
    _append_all(event_log, [tick(i) for i in range(5)])
    seq = event_log.committed_seq
    v1 = {
        "seq": seq,
        "cash": 5_000.0,
        "starting_cash": 10_000.0,
        "realized_pnl": 12.0,
        "positions": {"AAPL": 3.0},
        "avg_prices": {"AAPL": 100.0},
        "prices": {"AAPL": 101.0},
        "trading_state": "active",
    }
    event_log.save_snapshot(seq, 1, v1)
    _append_all(event_log, [fill(1, symbol="AAPL", side="buy")])

    result = restore(event_log)

    assert result.skipped_snapshots == ()
    assert result.snapshot_seq == seq and result.replayed == 1
    assert result.state["positions"]["AAPL"]["qty"] == 4.0
    assert result.state["meta"]["schema_version"] == model.SCHEMA_VERSION


def test_snapshotter_snapshots_on_its_interval(event_log: EventLog) -> None:
    _append_all(event_log, history(5))

    def source() -> tuple[int, dict[str, object]]:
        seq = event_log.flush()
        return seq, model.state_to_dict(full_replay(event_log, upto_seq=seq))

    snap = Snapshotter(event_log, source, interval_s=300)
    s = 1_000_000_000
    assert snap.maybe_snapshot(0) is None
    assert snap.maybe_snapshot(299 * s) is None
    assert snap.maybe_snapshot(300 * s) is not None
    assert snap.maybe_snapshot(700 * s) is None  # nothing new since the last one
    event_log.append(tick(99))
    assert snap.snapshot_now() is not None
    assert snap.count == 2
    assert restore(event_log).snapshot_seq == event_log.last_seq


def test_snapshotter_also_snapshots_every_n_events(event_log: EventLog) -> None:
    def source() -> tuple[int, dict[str, object]]:
        seq = event_log.flush()
        return seq, model.state_to_dict(full_replay(event_log, upto_seq=seq))

    snap = Snapshotter(
        event_log, source, interval_s=300, every_events=4, seq_source=lambda: event_log.last_seq
    )
    s = 1_000_000_000
    taken = []
    for i in range(10):
        event_log.append(tick(100 + i))
        taken.append(snap.maybe_snapshot(i * s) is not None)  # well within the 300 s

    assert taken == [False, False, False, True, False, False, False, True, False, False]
    assert snap.last_seq == 8
    assert restore(event_log).snapshot_seq == 8 and restore(event_log).replayed == 2


def test_every_n_events_needs_a_seq_source(event_log: EventLog) -> None:
    with pytest.raises(ValueError, match="every_events"):
        Snapshotter(event_log, lambda: (0, {}), every_events=10)
