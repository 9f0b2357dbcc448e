"""``Kernel.state_at`` (time travel): the state as of any seq equals a full replay up to it,
restored from the newest snapshot at or before it plus the events after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import SeamlessConfig, parse_config
from engine.kernel import Kernel, Mode
from persistence import full_replay
from state import state_to_dict
from state.fold import replay
from streams.events import BUY, SELL, BarReceived, OrderSubmitted
from testkit.engine_process import NO_LIMITS


def config(tmp_path: Path) -> SeamlessConfig:
    """A live engine writing under ``tmp_path``: no feed, no strategy, no risk limits."""
    return parse_config(
        {
            "storage": {"db_path": str(tmp_path / "engine.duckdb")},
            "broker": {"account_path": str(tmp_path / "broker.json")},
            "feed": {"kind": "none", "symbols": ["AAPL"]},
            "strategies": [],
            "runner": {"heartbeat_interval_s": 3_600.0},  # no events but the test's
            "risk": dict(NO_LIMITS),
        },
        env={},
    )


def bar(kernel: Kernel, price: float) -> None:
    kernel.publish(
        BarReceived(
            symbol="AAPL",
            open=price,
            high=price + 1,
            low=price - 1,
            close=price,
            ts_event=kernel.clock.now_ns(),
        )
    )
    assert kernel.bus.join(10)


def order(kernel: Kernel, order_id: str, side: str, qty: float) -> None:
    """A market order, filled by the broker at the next bar's open."""
    kernel.publish(
        OrderSubmitted(
            order_id=order_id,
            strategy="manual",
            symbol="AAPL",
            side=side,
            qty=qty,
            ts_event=kernel.clock.now_ns(),
        )
    )
    assert kernel.bus.join(10)


def trade_some(kernel: Kernel, tag: str, first_price: float) -> None:
    bar(kernel, first_price)
    order(kernel, f"{tag}-buy", BUY, 10)
    bar(kernel, first_price + 1)  # fills the buy at this open
    bar(kernel, first_price + 3)
    order(kernel, f"{tag}-sell", SELL, 4)
    bar(kernel, first_price + 2)  # fills the sell
    order(kernel, f"{tag}-open", BUY, 1)  # still open at the end


def test_state_at_equals_a_full_replay_at_every_seq(tmp_path: Path) -> None:
    kernel = Kernel(config(tmp_path), mode=Mode.LIVE).start()
    try:
        trade_some(kernel, "a", 100.0)
        assert kernel.snapshotter is not None
        kernel.bus.join(10)
        assert kernel.snapshotter.snapshot_now() is not None
        snapshot_seq = kernel.snapshotter.last_seq
        trade_some(kernel, "b", 110.0)
        live: dict[str, Any] = state_to_dict(kernel.store.get_state())
        last = int(live["meta"]["seq"])
        assert last > snapshot_seq + 5

        for seq in range(0, last + 1):
            found = kernel.state_at(seq)
            assert found["seq"] == seq
            assert found["state"] == state_to_dict(full_replay(kernel.log, seq)), seq
            if seq >= snapshot_seq:  # from the snapshot, only the tail replayed
                assert found["snapshot_seq"] == snapshot_seq
                assert found["replayed"] == seq - snapshot_seq
            else:
                assert found["snapshot_seq"] < snapshot_seq
            if seq:
                event = kernel.log.read(since_seq=seq - 1, until_seq=seq)[0]
                assert (found["ts"], found["type"]) == (event.ts_event, event.type)

        latest = kernel.state_at(last)
        assert latest["state"] == live  # time travel to the end is the live state
        assert latest["state"]["positions"]["AAPL"]["qty"] == 13.0  # a-open filled in b
        assert set(latest["state"]["orders"]) == {"b-open"}
        before = kernel.state_at(snapshot_seq)["state"]
        assert before["positions"]["AAPL"]["qty"] == 6.0
        assert set(before["orders"]) == {"a-open"}
        assert kernel.state_at(last + 1_000)["seq"] == last  # beyond the end: as of the last
        start = kernel.state_at(0)
        assert (start["seq"], start["ts"], start["type"], start["replayed"]) == (0, 0, "", 0)
        assert start["state"]["positions"] == {}
    finally:
        kernel.stop()


def test_state_at_on_an_in_memory_backtest_log_is_a_replay(tmp_path: Path) -> None:
    kernel = Kernel(config(tmp_path), mode=Mode.BACKTEST).start()
    try:
        trade_some(kernel, "m", 50.0)
        events = list(kernel.log.events)
        for seq in (0, 1, len(events) // 2, len(events)):
            found = kernel.state_at(seq)
            assert found["seq"] == seq
            assert found["state"] == state_to_dict(replay(events[:seq]))
            assert found["snapshot_seq"] == 0 and found["replayed"] == seq
    finally:
        kernel.stop()
