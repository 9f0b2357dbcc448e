"""The wired core (EventLog -> StateStore -> EventBus): durable before visible, one order."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from engine.core import build_core
from persistence import EventLog, full_replay
from state import state_to_dict
from streams.clock import ManualClock
from streams.events import Event, OrderAccepted, TickReceived, TradeExecuted


def _fill(i: int, strategy: str = "s") -> TradeExecuted:
    return TradeExecuted(
        fill_id=f"f{strategy}{i}",
        order_id=f"o{strategy}{i}",
        strategy=strategy,
        symbol="AAPL",
        side="buy" if i % 2 == 0 else "sell",
        qty=1.0,
        price=100.0 + i % 5,
        ts_event=i + 1,
    )


def test_critical_event_is_committed_before_any_subscriber_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "log.duckdb"
    with EventLog(path) as log:
        core = build_core(journal=log, clock=ManualClock(1), threaded=True)
        seen_committed: list[bool] = []

        def check(event: Event) -> None:
            seen_committed.append(log.committed_seq >= event.seq)

        core.bus.subscribe("fills.*", check)
        for i in range(20):
            core.publish(_fill(i))
        assert core.bus.join(10)
        core.stop()
    assert seen_committed == [True] * 20


def test_many_publisher_threads_each_critical_event_once_in_the_log_order(tmp_path: Path) -> None:
    path = tmp_path / "log.duckdb"
    with EventLog(path) as log:
        core = build_core(journal=log, clock=ManualClock(1), threaded=True, capacity=256)
        delivered: list[Event] = []
        core.bus.subscribe("orders.*", delivered.append)

        def publish_many(t: int) -> None:
            for i in range(300):
                core.publish(OrderAccepted(order_id=f"{t}-{i}", strategy=f"t{t}", symbol="AAPL"))
                if i % 50 == 0:
                    core.publish(TickReceived(symbol="AAPL", last=1.0 + i))

        threads = [threading.Thread(target=publish_many, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert core.bus.join(30)
        core.stop()
        live = state_to_dict(core.store.get_state())
        stored = log.read(topic="orders.*")
        replayed = state_to_dict(full_replay(log))
    assert len(delivered) == 8 * 300
    assert len({e.event_id for e in delivered}) == 8 * 300
    assert [e.event_id for e in delivered] == [e.event_id for e in stored]
    assert [e.seq for e in delivered] == [e.seq for e in stored]
    assert live == replayed
    with duckdb.connect(str(path), read_only=True) as con:
        seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_duplicate_event_ids_are_applied_once(tmp_path: Path) -> None:
    with EventLog(tmp_path / "log.duckdb") as log:
        core = build_core(journal=log, clock=ManualClock(1), starting_cash=1000.0)
        fill = _fill(0)
        core.publish(fill)
        core.publish(fill)
        assert core.store.get_state("positions.AAPL.qty") == 1.0
        assert core.bus.stats.duplicates == 1
        assert log.count(types=["trade_executed"]) == 1
        core.stop()
