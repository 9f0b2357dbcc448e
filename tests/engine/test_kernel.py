"""The kernel: built from config, started and stopped cleanly, restarted from its log with the
same books, and started halted when the broker's account cannot be read."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.config import SeamlessConfig, parse_config
from engine.kernel import Kernel, Mode
from persistence import CLEAN, EventLog, full_replay
from state import state_to_dict
from streams.errors import ConfigError
from streams.events import (
    HALTED,
    BarReceived,
    OrderRejected,
    ReconciliationAdjusted,
    TradeExecuted,
)
from testkit.engine_process import NO_LIMITS, sma_strategy
from tests.factories import order_submitted


def kernel_config(tmp_path: Path, **sections: Any) -> SeamlessConfig:
    """A config writing under ``tmp_path``, no feed, fast heartbeats, no limits."""
    data: dict[str, Any] = {
        "storage": {"db_path": str(tmp_path / "engine.duckdb")},
        "broker": {"account_path": str(tmp_path / "broker.json")},
        "feed": {"kind": "none", "symbols": ["AAPL"]},
        "strategies": [sma_strategy("sma", "AAPL", fast=2, slow=3, qty=10)],
        "risk": dict(NO_LIMITS),
        "runner": {"heartbeat_interval_s": 0.05},
    }
    data.update(sections)
    return parse_config(data, env={})


def publish_bar(kernel: Kernel, open_: float, close: float | None = None) -> None:
    close = open_ if close is None else close
    kernel.publish(
        BarReceived(
            symbol="AAPL",
            open=open_,
            high=max(open_, close),
            low=min(open_, close),
            close=close,
            ts_event=kernel.clock.now_ns(),
        )
    )
    assert kernel.bus.join(10)


def buy_ten(kernel: Kernel) -> None:
    """An order at 100 filled at the next bar's open (101)."""
    publish_bar(kernel, 100)
    kernel.publish(
        order_submitted("manual-1", qty=10, strategy="manual", ts_event=kernel.clock.now_ns())
    )
    assert kernel.bus.join(10)
    publish_bar(kernel, 101)


def test_start_runs_the_runner_and_stop_writes_a_snapshot_and_ends_the_run_clean(
    tmp_path: Path,
) -> None:
    config = kernel_config(tmp_path)
    with Kernel.from_config(config) as kernel:
        assert kernel.runner.status == "running"
        assert kernel.host.status == {"sma": "running"}
        run_id = kernel.run_id

    with EventLog(config.storage.db_path) as log:
        runs = log.runs()
        snapshot = log.latest_snapshot()
        last_seq = log.last_seq
    assert [(r.run_id, r.how) for r in runs] == [(run_id, CLEAN)]
    assert runs[0].ended_at is not None and runs[0].config_hash == config.config_hash()
    assert snapshot.snapshot is not None and snapshot.snapshot.seq == last_seq


def test_health_reports_engine_bus_log_state_and_feed(tmp_path: Path) -> None:
    with Kernel.from_config(kernel_config(tmp_path)) as kernel:
        deadline = time.monotonic() + 5
        while kernel.health()["engine"]["heartbeat_age_s"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        health = kernel.health()

    assert set(health) == {"engine", "bus", "event_log", "state", "feed", "process"}
    engine = health["engine"]
    assert engine["runner"] == "running" and engine["trading"] == "active"
    assert engine["name"] == "seamless-paper" and engine["run_id"]
    assert engine["heartbeat_age_s"] is not None and engine["heartbeat_age_s"] >= 0
    assert health["event_log"]["healthy"] is True
    assert health["event_log"]["last_seq"] >= health["state"]["seq"] > 0
    assert health["bus"]["subscriber_errors"] == 0
    assert health["bus"]["published"] >= health["bus"]["dispatched"] > 0
    assert health["feed"] == {"status": "none"}


def test_the_event_log_gets_storage_memory_limit(tmp_path: Path) -> None:
    config = kernel_config(
        tmp_path,
        storage={"db_path": str(tmp_path / "engine.duckdb"), "memory_limit": "96MiB"},
    )
    kernel = Kernel.from_config(config)
    try:
        with kernel.log._reader() as cur:  # type: ignore[attr-defined]
            setting = cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    finally:
        kernel.stop()
    assert setting == "96.0 MiB"


def test_a_restart_restores_the_same_books_and_seq_goes_on(tmp_path: Path) -> None:
    config = kernel_config(tmp_path)
    with Kernel.from_config(config) as kernel:
        buy_ten(kernel)
        assert kernel.store.get_state("positions.AAPL.qty") == 10.0
        before = state_to_dict(kernel.store.get_state())
        first_run_last_seq = kernel.log.last_seq

    restarted = Kernel.from_config(config)
    try:
        restored = state_to_dict(restarted.store.get_state())
        restarted.start()
        publish_bar(restarted, 102)
        reconciled = restarted.reconciliation
    finally:
        restarted.stop()

    assert restored["positions"] == before["positions"]
    assert restored["account"] == before["account"]
    assert reconciled is not None and reconciled.in_sync
    with EventLog(config.storage.db_path) as log:
        events = log.read()
        replayed = state_to_dict(full_replay(log))
        runs = log.runs()
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs[-1] > first_run_last_seq
    assert len({e.event_id for e in events}) == len(events)
    assert [r.how for r in runs] == [CLEAN, CLEAN]
    assert replayed["positions"]["AAPL"]["qty"] == 10.0
    assert [e.order_id for e in events if isinstance(e, TradeExecuted)] == ["manual-1"]


def test_an_unreadable_broker_account_starts_the_engine_halted_and_it_does_not_trade(
    tmp_path: Path,
) -> None:
    config = kernel_config(tmp_path)
    with Kernel.from_config(config) as kernel:
        buy_ten(kernel)
    Path(config.broker.account_path).write_text("{ this is not json", encoding="utf-8")

    with Kernel.from_config(config) as kernel:
        assert kernel.store.get_state("trading.state") == HALTED
        assert kernel.runner.status == "halted"
        assert kernel.health()["engine"]["trading"] == HALTED
        buy_more = order_submitted(
            "manual-2", qty=5, strategy="manual", ts_event=kernel.clock.now_ns()
        )
        kernel.publish(buy_more)
        kernel.bus.join(10)
        publish_bar(kernel, 103)
        publish_bar(kernel, 104)
        position = kernel.store.get_state("positions.AAPL.qty")

    assert position == 10.0  # restored from the log, never changed
    with EventLog(config.storage.db_path) as log:
        events = log.read()
    assert [e.order_id for e in events if isinstance(e, TradeExecuted)] == ["manual-1"]
    rejected = [e for e in events if isinstance(e, OrderRejected) and e.order_id == "manual-2"]
    assert len(rejected) == 1
    assert not [e for e in events if isinstance(e, ReconciliationAdjusted)]


def test_commands_from_actors_that_are_not_operators_are_refused(tmp_path: Path) -> None:
    with Kernel.from_config(kernel_config(tmp_path)) as kernel:
        kernel.command("pause", "stranger")
        kernel.bus.join(10)
        status_after_stranger = kernel.runner.status
        kernel.command("pause", "operator")
        kernel.bus.join(10)
        status_after_operator = kernel.runner.status

    assert (status_after_stranger, status_after_operator) == ("running", "paused")


def test_a_bad_strategy_in_config_fails_the_build_and_leaves_the_log_closed(
    tmp_path: Path,
) -> None:
    config = kernel_config(
        tmp_path,
        strategies=[
            {
                "name": "x",
                "strategy": "sma_crossover",
                "symbols": ["AAPL"],
                "params": {"fast": 9, "slow": 3},
            }
        ],
    )

    with pytest.raises(
        ConfigError, match=r"strategy 'x': fast \(9\) must be smaller than slow \(3\)"
    ):
        Kernel.from_config(config)

    with EventLog(config.storage.db_path) as log:  # not held: it can be opened again
        assert log.runs() == []


def test_operator_changes_risk_limits_at_run_time_and_they_survive_a_restart(
    tmp_path: Path,
) -> None:
    config = kernel_config(tmp_path)
    with Kernel.from_config(config) as kernel:
        kernel.command("set_risk_limits", "engine", limits={"max_position": 5.0})
        kernel.command("set_risk_limits", "engine", limits={"max_position": -1.0})
        kernel.command("set_risk_limits", "engine", limits={"warp_speed": 9})
        assert kernel.bus.join(10)
        assert kernel.risk.config.max_position == 5.0
        assert kernel.store.get_state("risk.limits") == {"max_position": 5.0}
        refused = kernel.log.read(types=["command_refused"])
        reasons = [e.reason for e in refused]  # type: ignore[attr-defined]
        assert any("risk.max_position" in r and "-1.0" in r for r in reasons)
        assert any("risk.warp_speed" in r for r in reasons)
    again = Kernel.from_config(config)
    try:
        assert again.risk.config.max_position == 5.0
    finally:
        again.log.close()


# -- replay mode: the data's clock, the end of the data, resuming after a restart -------------
def replay_config(tmp_path: Path, rows: int = 60) -> SeamlessConfig:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2021-03-01", periods=rows, freq="D", tz="UTC"),
            "open": [100.0 + (i % 7) for i in range(rows)],
            "high": [110.0] * rows,
            "low": [90.0] * rows,
            "close": [100.0 + (i % 5) for i in range(rows)],
        }
    )
    frame.to_csv(tmp_path / "bars.csv", index=False)
    feed = {"kind": "csv", "path": str(tmp_path / "bars.csv"), "symbols": ["AAPL"]}
    return kernel_config(tmp_path, feed=feed | {"speed": 0, "loop": False})


def run_to_the_end(config: SeamlessConfig) -> int:
    """Replay ``config``'s file until the engine has handled all of it; the clock then."""
    kernel = Kernel.from_config(config)
    assert kernel.mode == Mode.REPLAY
    kernel.start()
    deadline = time.monotonic() + 30
    while not kernel.data_finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kernel.data_finished
    now = kernel.clock.now_ns()
    kernel.stop()
    return now


def test_a_replay_runs_on_the_datas_clock_and_resumes_after_a_restart(tmp_path: Path) -> None:
    config = replay_config(tmp_path)
    last_bar = pd.Timestamp("2021-03-01", tz="UTC").value + 59 * 86_400 * 10**9

    clock_at_end = run_to_the_end(config)
    clock_again = run_to_the_end(config)

    assert clock_at_end == last_bar == clock_again  # data time, not the wall clock
    with EventLog(tmp_path / "engine.duckdb") as log:
        bars = log.read(types=["bar"])
        fills = log.read(types=["trade_executed"])
    assert len(bars) == 60  # the restart replayed nothing twice
    assert fills and {f.ts_event for f in fills} <= {b.ts_event for b in bars}
