"""Parity: the engine's fills equal backtrader's fill by fill, and a live replay of a file through
``seamless run`` gives exactly the orders and fills that ``seamless backtest`` gives for it.

The first half runs the SMA crossover on the bundled AAPL and MSFT daily bars in backtrader
(pure Python, the reference engine) and in Seamless, and compares every fill (date, side, price,
quantity) and the realized P&L to the cent. The second half runs two real processes on one
config file: ``seamless run`` replaying the CSV at full speed (threaded engine, DuckDB log,
broker file, stops by itself at the end of the data) and ``seamless backtest --config``, then
compares the order lifecycle, fills and positions in their two event logs, timestamps included.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from engine.backtest import run_backtest
from persistence import EventLog
from streams.sources import load_sample_bars
from testkit.engine_process import SEAMLESS
from tests.engine.backtrader_reference import backtrader_sma_fills, plain_sma_fills

SMA = {"fast": 10, "slow": 30, "qty": 100.0}


def engine_fills(symbol: str) -> tuple[list[tuple[Any, str, float, float]], float]:
    result = run_backtest(
        load_sample_bars(symbol), strategy="sma_crossover", symbol=symbol, params=SMA
    )
    fills = [
        (pd.Timestamp(t["ts"], unit="ns").date(), t["side"], t["price"], t["qty"])
        for t in result.trades
    ]
    return fills, result.realized_pnl


@pytest.mark.parametrize("symbol", ["AAPL", "MSFT"])
def test_the_sma_cross_fills_equal_backtraders_fill_by_fill(symbol: str) -> None:
    bars = load_sample_bars(symbol)

    reference, reference_pnl = backtrader_sma_fills(bars, **SMA)  # type: ignore[arg-type]
    fills, pnl = engine_fills(symbol)

    assert len(reference) > 100  # the series really trades
    assert fills == reference
    assert round(pnl, 2) == round(reference_pnl, 2)


def test_the_plain_loop_reference_agrees_with_backtrader() -> None:
    bars = load_sample_bars("AAPL")

    assert plain_sma_fills(bars, **SMA)[0] == backtrader_sma_fills(bars, **SMA)[0]  # type: ignore[arg-type]


# -- live replay == backtest -----------------------------------------------------------------
#: Envelope fields that differ between two runs by nature: ids of events, their wall-clock
#: creation time, their place in each log, and links to other events' ids.
_PER_RUN = {"event_id", "seq", "ts_init", "causation_id"}
_TRADING_TYPES = (
    "order_submitted",
    "order_accepted",
    "order_rejected",
    "order_cancelled",
    "trade_executed",
    "position_updated",
    "position_closed",
    "daily_loss_breached",
    "trading_state_changed",
)


def trading_events(db: Path) -> list[dict[str, Any]]:
    with EventLog(db) as log:
        return [
            {k: v for k, v in event.to_dict().items() if k not in _PER_RUN}
            for event in log.read()
            if event.type in _TRADING_TYPES
        ]


def write_config(tmp_path: Path, csv: Path) -> Path:
    config = {
        "storage": {"db_path": str(tmp_path / "live.duckdb")},
        "broker": {"account_path": str(tmp_path / "broker.json")},
        "feed": {"kind": "csv", "path": str(csv), "symbols": ["AAPL"], "speed": 0, "loop": False},
        "strategies": [
            {"name": "sma_aapl", "strategy": "sma_crossover", "symbols": ["AAPL"], "params": SMA}
        ],
        "runner": {"heartbeat_interval_s": 0.05},
    }
    path = tmp_path / "replay.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def seamless(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEAMLESS_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [SEAMLESS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_live_replay_gives_the_orders_and_fills_of_the_backtest(tmp_path: Path) -> None:
    csv = tmp_path / "aapl.csv"
    load_sample_bars("AAPL").to_csv(csv, index=False)
    config = write_config(tmp_path, csv)

    live = seamless("run", "--config", str(config), cwd=tmp_path)
    backtest = seamless(
        "backtest",
        "--config",
        str(config),
        "--db",
        str(tmp_path / "bt.duckdb"),
        "--json",
        cwd=tmp_path,
    )

    assert live.returncode == 0, live.stderr[-2000:]
    assert "end of the replayed data" in live.stderr
    assert backtest.returncode == 0, backtest.stderr[-2000:]
    live_events = trading_events(tmp_path / "live.duckdb")
    backtest_events = trading_events(tmp_path / "bt.duckdb")
    fills = [e for e in live_events if e["type"] == "trade_executed"]
    assert len(fills) == json.loads(backtest.stdout)["fills"] > 100
    assert live_events == backtest_events
    # data time: every fill is stamped with the time of the bar it filled on
    bar_times = set(pd.to_datetime(load_sample_bars("AAPL")["timestamp"]).astype("int64"))
    assert {f["ts_event"] for f in fills} <= bar_times
