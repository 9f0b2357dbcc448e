"""The read-only mirror: restored from the log, follows live events in seq order exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.config import SeamlessConfig, parse_config
from engine.core import Core, build_core
from engine.mirror import Mirror, ReadOnlyMirror
from persistence import EventLog
from state.journal import ReplicaJournal
from streams.errors import SeamlessError
from streams.events import Event
from tests import factories as f


class _Captured:
    """A follow factory that hands the test the mirror's ``deliver``."""

    def __init__(self) -> None:
        self.after = -1
        self.deliver: Callable[[Event], None] | None = None
        self.closed = False

    def __call__(self, after: int, deliver: Callable[[Event], None]) -> _Captured:
        self.after, self.deliver = after, deliver
        return self

    def close(self) -> None:
        self.closed = True


def _engine(tmp_path: Path) -> tuple[EventLog, Core]:
    log = EventLog(tmp_path / "node.duckdb").open()
    core = build_core(journal=log, starting_cash=50_000.0)
    for price in (100.0, 101.0):
        core.publish(f.tick(last=price))
    core.publish(f.buy(qty=5, price=101.0))
    log.flush()
    return log, core


def _config(tmp_path: Path) -> SeamlessConfig:
    return parse_config({"storage": {"db_path": str(tmp_path / "node.duckdb")}})


def test_mirror_restores_the_book_and_follows_in_order_exactly_once(tmp_path: Path) -> None:
    log, core = _engine(tmp_path)
    follow = _Captured()
    mirror = Mirror(_config(tmp_path), log_=log, follow=follow)
    assert mirror.store.get_state("") == core.store.get_state("")
    seen: list[int] = []
    mirror.bus.subscribe(">", lambda e: seen.append(e.seq))
    mirror.start()
    assert follow.after == log.committed_seq

    core.publish(f.tick(last=102.0))
    core.publish(f.sell(qty=5, price=102.0))
    core.publish(f.cash_adjusted(amount=10.0))
    log.flush()
    new = log.read(since_seq=follow.after)
    assert [e.seq for e in new] == list(range(follow.after + 1, follow.after + 4))
    assert follow.deliver is not None
    follow.deliver(new[2])  # a gap: the two before are read back from the log first
    follow.deliver(new[1])  # a redelivery: dropped
    follow.deliver(new[2])
    assert mirror.bus.join(5)
    assert seen == [e.seq for e in new]
    assert mirror.store.get_state("") == core.store.get_state("")
    assert mirror.published_seq == new[-1].seq

    with pytest.raises(ReadOnlyMirror, match="read-only"):
        mirror.command("halt", "operator")
    assert mirror.health()["event_log"]["mirrored_seq"] == new[-1].seq
    mirror.stop()
    assert follow.closed


def test_mirror_without_jetstream_polls_the_log(tmp_path: Path) -> None:
    log, core = _engine(tmp_path)
    mirror = Mirror(_config(tmp_path), log_=log, poll_interval_s=0.02)
    mirror.start()
    for price in (103.0, 104.0, 105.0):
        core.publish(f.tick(last=price))
    log.flush()
    deadline = time.monotonic() + 10
    while mirror.published_seq < log.committed_seq and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mirror.bus.join(5)
    assert mirror.published_seq == log.committed_seq
    assert mirror.store.get_state("") == core.store.get_state("")
    mirror.stop()


def test_replica_journal_takes_only_the_next_seq() -> None:
    journal = ReplicaJournal(last_seq=3)
    assert journal.append(f.tick(seq=0)) is None  # a local event: not the book's
    assert journal.append(f.tick(seq=3)) is None  # already have it
    kept = journal.append(f.tick(seq=4))
    assert kept is not None and kept.seq == 4 and journal.last_seq == 4
    with pytest.raises(SeamlessError, match="gap"):
        journal.append(f.tick(seq=6))
    assert journal.dropped == 2
