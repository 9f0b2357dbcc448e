"""Backtests: hand-computed figures on a tiny series, determinism, and the DuckDB log they
write."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.backtest import BacktestResult, run_backtest
from engine.cli import main as cli_main
from engine.config import BrokerConfig
from persistence import EventLog, full_replay
from streams.errors import ConfigError
from streams.events import BUY, SELL

# (open, close) per one-minute bar. SMA(2) vs SMA(3) on the closes: flat at 10, a cross up at
# the 4th close (fast 11.5 > slow 11), a cross down at the 7th (fast 11 < slow 12). Market
# orders fill at the next bar's open: buy 10 @ 13.5, sell 10 @ 8.5 -> realized -50.
TINY: list[tuple[float, float]] = [
    (10, 10),
    (10, 10),
    (10, 10),
    (10, 13),
    (13.5, 14),
    (14, 14),
    (14, 8),
    (8.5, 8),
    (8, 8),
]
SMA_PARAMS = {"fast": 2, "slow": 3, "qty": 10}


def bars_frame(rows: list[tuple[float, float]]) -> pd.DataFrame:
    opens = [float(o) for o, _ in rows]
    closes = [float(c) for _, c in rows]
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(
                "2024-01-02 14:30", periods=len(rows), freq="1min", tz="UTC"
            ),
            "open": opens,
            "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [1_000.0] * len(rows),
        }
    )


def random_walk(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    opens = np.concatenate([[100.0], closes[:-1]])
    return bars_frame(list(zip(opens.round(4).tolist(), closes.round(4).tolist(), strict=True)))


def figures(result: BacktestResult) -> dict[str, object]:
    summary = result.summary()
    del summary["elapsed_s"], summary["bars_per_s"]
    return summary


def test_the_tiny_series_gives_the_hand_computed_fills_round_trip_and_pnl() -> None:
    result = run_backtest(
        bars_frame(TINY), strategy="sma_crossover", symbol="AAPL", params=SMA_PARAMS
    )

    assert result.bars == len(TINY)
    assert [(t["side"], t["qty"], t["price"]) for t in result.trades] == [
        (BUY, 10.0, 13.5),
        (SELL, 10.0, 8.5),
    ]
    assert (result.fills, result.round_trips) == (2, 1)
    assert result.realized_pnl == pytest.approx(-50.0)
    assert result.commissions == 0.0 and result.net_pnl == pytest.approx(-50.0)
    assert result.final_equity == pytest.approx(100_000.0 - 50.0)
    # long 10 from 13.5: peak marked at the 14 close (+5), trough at the 8 close (-55)
    assert result.max_drawdown == pytest.approx(60.0)
    assert result.params == SMA_PARAMS | {"symbols": ["AAPL"]}


def test_commission_comes_off_the_net_pnl() -> None:
    result = run_backtest(
        bars_frame(TINY),
        strategy="sma",
        symbol="AAPL",
        params=SMA_PARAMS,
        broker=BrokerConfig(account_path="", commission_per_unit=0.1),
    )

    assert result.commissions == pytest.approx(2.0)  # 2 fills x 10 units x 0.1
    assert result.realized_pnl == pytest.approx(-50.0)
    assert result.net_pnl == pytest.approx(-52.0)


def test_the_same_run_twice_gives_identical_figures() -> None:
    data = random_walk(3_000)

    first = run_backtest(
        data, strategy="sma_crossover", symbol="AAPL", params={"fast": 5, "slow": 20, "qty": 10}
    )
    second = run_backtest(
        data, strategy="sma_crossover", symbol="AAPL", params={"fast": 5, "slow": 20, "qty": 10}
    )

    assert first.fills > 10  # the walk really trades
    assert figures(first) == figures(second)
    assert [(t["side"], t["price"], t["ts"]) for t in first.trades] == [
        (t["side"], t["price"], t["ts"]) for t in second.trades
    ]
    assert first.equity_curve == second.equity_curve


def test_summary_has_the_json_fields_and_is_json_ready() -> None:
    result = run_backtest(bars_frame(TINY), strategy="sma", symbol="AAPL", params=SMA_PARAMS)

    summary = json.loads(json.dumps(result.summary()))

    assert {"bars", "fills", "round_trips", "realized_pnl", "elapsed_s"} <= set(summary)
    assert summary["bars"] == len(TINY) and summary["fills"] == 2
    assert summary["elapsed_s"] >= 0


def test_progress_is_reported_and_ends_at_the_total() -> None:
    calls: list[tuple[int, int]] = []

    run_backtest(
        random_walk(250),
        strategy="sma",
        symbol="AAPL",
        params=SMA_PARAMS,
        progress=lambda done, total: calls.append((done, total)),
        progress_every=100,
    )

    assert calls == [(100, 250), (200, 250), (250, 250)]


def test_bad_strategy_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="fast"):
        run_backtest(bars_frame(TINY), strategy="sma", symbol="AAPL", params={"fast": 5, "slow": 3})


def test_the_db_log_is_readable_by_seamless_events_and_state(tmp_path: Path) -> None:
    db = tmp_path / "bt.duckdb"
    result = run_backtest(
        bars_frame(TINY), strategy="sma", symbol="AAPL", params=SMA_PARAMS, db_path=db
    )

    events_out, state_out = io.StringIO(), io.StringIO()
    assert (
        cli_main(["events", "--db", str(db), "--topic", "fills.*", "--json"], out=events_out) == 0
    )
    assert cli_main(["state", "--db", str(db), "--json"], out=state_out) == 0

    fills = [json.loads(line) for line in events_out.getvalue().splitlines()]
    assert [(f["side"], f["price"]) for f in fills] == [(BUY, 13.5), (SELL, 8.5)]
    state = json.loads(state_out.getvalue())["state"]
    assert state["account"]["realized_pnl"] == pytest.approx(result.realized_pnl)
    assert state["positions"]["AAPL"]["qty"] == 0.0
    with EventLog(db) as log:
        seqs = [e.seq for e in log.read()]
        assert full_replay(log)["account"]["realized_pnl"] == pytest.approx(-50.0)
    assert seqs == list(range(1, len(seqs) + 1))
