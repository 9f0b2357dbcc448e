"""Metrics (engine/research/metrics.py): daily returns of end-of-day equity, the library's
figures on them (compared with empyrical called here on the same returns), trade statistics of
hand-made round trips, exposure and turnover, degenerate runs, and where a backtest's metrics
end up (its JSON summary, its event log)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import empyrical
import numpy as np
import pandas as pd
import pytest

from engine.backtest import BacktestResult, run_backtest
from engine.portfolio import RoundTrip
from engine.research.metrics import (
    METRIC_KEYS,
    METRICS_PATH,
    compute_metrics,
    daily_returns,
    end_of_day_equity,
    exposure,
    format_metric,
    json_ready,
    recorded_metrics,
    round_trips,
    trade_stats,
    turnover,
)
from persistence import EventLog, restore
from streams.events import BUY, SELL, StateChanged, TradeExecuted
from testkit.engine_process import seamless

NS_PER_HOUR = 3_600 * 10**9
DAY0 = pd.Timestamp("2024-03-04", tz="UTC").value  # a Monday


def at(day: int, hour: float) -> int:
    return DAY0 + day * 24 * NS_PER_HOUR + int(hour * NS_PER_HOUR)


def hourly_bars(days: int, seed: int = 7) -> pd.DataFrame:
    """Seven hourly bars a weekday (14:30-20:30 UTC), a random walk with some trend."""
    rng = np.random.default_rng(seed)
    stamps = [
        ts
        for day in pd.bdate_range("2024-01-02", periods=days, tz="UTC")
        for ts in pd.date_range(day + pd.Timedelta(hours=14.5), periods=7, freq="1h")
    ]
    closes = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.004, len(stamps))))
    opens = np.concatenate([[100.0], closes[:-1]])
    return pd.DataFrame(
        {
            "timestamp": stamps,
            "open": opens.round(4),
            "high": np.maximum(opens, closes).round(4) + 0.05,
            "low": np.minimum(opens, closes).round(4) - 0.05,
            "close": closes.round(4),
            "volume": 10_000.0,
        }
    )


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    return run_backtest(
        hourly_bars(90), strategy="sma", symbol="AAPL", params={"fast": 3, "slow": 12, "qty": 50}
    )


def trip(net: float, commissions: float = 0.0) -> RoundTrip:
    return RoundTrip(
        symbol="AAPL",
        side="long",
        opened_ns=1,
        closed_ns=2,
        max_qty=10.0,
        realized_pnl=net + commissions,
        commissions=commissions,
        fills=2,
    )


def fill(ts: int, side: str, qty: float, price: float = 10.0, symbol: str = "AAPL") -> dict:
    return {"ts": ts, "symbol": symbol, "side": side, "qty": qty, "price": price}


# -- daily returns ---------------------------------------------------------------------------------
def test_daily_returns_take_the_last_equity_of_each_utc_day() -> None:
    curve = [
        (at(0, 14.5), 100.0),  # the opening value: the first point
        (at(0, 16), 103.0),
        (at(0, 23.99), 102.0),  # Monday's close, just before midnight UTC
        (at(1, 0.01), 90.0),  # Tuesday already
        (at(1, 20), 110.16),
        (at(4, 15), 99.0),  # Friday: no points on Wednesday or Thursday
        (at(4, 20), 121.176),
    ]

    returns = daily_returns(curve)

    assert list(returns.index) == [
        pd.Timestamp("2024-03-04", tz="UTC"),
        pd.Timestamp("2024-03-05", tz="UTC"),
        pd.Timestamp("2024-03-08", tz="UTC"),
    ]
    assert returns.to_numpy() == pytest.approx([0.02, 0.08, 0.10], abs=1e-12)
    assert list(end_of_day_equity(curve)) == [102.0, 110.16, 121.176]


def test_daily_bars_give_one_return_a_bar_the_first_zero() -> None:
    curve = [(at(d, 21), eq) for d, eq in enumerate([100.0, 101.0, 99.99])]

    assert daily_returns(curve).to_numpy() == pytest.approx([0.0, 0.01, -0.01], abs=1e-12)


# -- the library's figures -------------------------------------------------------------------------
def test_the_figures_are_the_librarys_on_the_same_daily_returns(result: BacktestResult) -> None:
    returns = daily_returns(result.equity_curve)
    assert len(returns) == 90 and result.fills > 20  # intraday bars, one return a day

    metrics = compute_metrics(result)

    expected = {
        "total_return": empyrical.cum_returns_final(returns),
        "cagr": empyrical.cagr(returns, period="daily"),
        "sharpe": empyrical.sharpe_ratio(returns, risk_free=0, annualization=252),
        "sortino": empyrical.sortino_ratio(returns, required_return=0, annualization=252),
        "calmar": empyrical.calmar_ratio(returns, annualization=252),
        "max_drawdown": -empyrical.max_drawdown(returns),
        "volatility": empyrical.annual_volatility(returns, annualization=252),
    }
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    assert list(metrics) == list(METRIC_KEYS)
    assert result.metrics == metrics and result.sharpe == metrics["sharpe"]


def test_the_summary_carries_the_metrics_as_valid_json(result: BacktestResult) -> None:
    summary = json.loads(json.dumps(result.summary(), allow_nan=False))

    assert summary["metrics"] == json_ready(result.metrics)
    assert summary["sharpe"] == summary["metrics"]["sharpe"]


# -- trades, exposure, turnover --------------------------------------------------------------------
def test_trade_statistics_of_hand_made_round_trips() -> None:
    trips = [trip(100.0, commissions=10.0), trip(-50.0), trip(30.0), trip(0.0), trip(-10.0)]

    stats = trade_stats(trips)

    assert stats == pytest.approx(
        {"win_rate": 2 / 5, "profit_factor": 130 / 60, "avg_win": 65.0, "avg_loss": -30.0}
    )


def test_trade_statistics_without_losers_or_trips() -> None:
    only_wins = trade_stats([trip(5.0), trip(7.0)])
    nothing = trade_stats([])

    assert only_wins["profit_factor"] == math.inf and math.isnan(only_wins["avg_loss"])
    assert only_wins["win_rate"] == 1.0 and only_wins["avg_win"] == 6.0
    assert all(math.isnan(v) for v in nothing.values())


def test_exposure_counts_the_bars_with_a_position_in_any_symbol() -> None:
    bars = list(range(1, 11))
    fills = [
        fill(2, BUY, 10),
        fill(4, BUY, 5, symbol="MSFT"),
        fill(5, SELL, 10),  # AAPL flat after bar 5, MSFT still held
        fill(8, SELL, 5, symbol="MSFT"),  # flat from bar 8 on
    ]

    assert exposure(bars, fills) == pytest.approx(6 / 10)  # bars 2..7
    assert exposure(bars, []) == 0.0
    assert math.isnan(exposure([], fills))


def test_turnover_is_traded_notional_over_mean_end_of_day_equity() -> None:
    curve = [(at(0, 20), 1_000.0), (at(1, 20), 1_200.0), (at(2, 20), 1_400.0)]
    fills = [fill(at(0, 20), BUY, 10, 50.0), fill(at(2, 20), SELL, 10, 70.0)]

    assert turnover(fills, curve) == pytest.approx((500.0 + 700.0) / 1_200.0)
    assert turnover([], curve) == 0.0


def test_round_trips_replayed_from_fills_are_the_portfolios(result: BacktestResult) -> None:
    fills = [
        TradeExecuted(
            fill_id=f"f{i}",
            order_id=f"o{i}",
            strategy=t["strategy"],
            symbol=t["symbol"],
            side=t["side"],
            qty=t["qty"],
            price=t["price"],
            commission=t["commission"],
            ts_event=t["ts"],
        )
        for i, t in enumerate(result.trades)
    ]

    assert round_trips(fills) == result.trips


# -- degenerate runs -------------------------------------------------------------------------------
def test_a_run_without_trades_has_flat_equity_and_undefined_ratios() -> None:
    flat = run_backtest(
        hourly_bars(10), strategy="sma", symbol="AAPL", params={"fast": 3, "slow": 500, "qty": 1}
    )

    m = flat.metrics

    assert flat.fills == 0
    assert (m["total_return"], m["cagr"], m["max_drawdown"], m["volatility"]) == (0, 0, 0, 0)
    assert (m["exposure"], m["turnover"]) == (0.0, 0.0)
    undefined = ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "avg_win", "avg_loss")
    assert all(math.isnan(m[k]) for k in undefined)
    summary = json.loads(json.dumps(flat.summary(), allow_nan=False))
    assert all(summary["metrics"][k] is None for k in undefined)
    assert summary["sharpe"] is None


def test_one_day_has_a_return_but_no_dispersion() -> None:
    one_day = run_backtest(
        hourly_bars(1), strategy="sma", symbol="AAPL", params={"fast": 1, "slow": 2, "qty": 10}
    )

    m = one_day.metrics

    assert len(daily_returns(one_day.equity_curve)) == 1
    assert math.isfinite(m["total_return"]) and math.isfinite(m["max_drawdown"])
    assert math.isnan(m["sharpe"]) and math.isnan(m["volatility"]) and math.isnan(m["sortino"])


def test_no_equity_at_all_gives_nan_everywhere() -> None:
    empty = dataclass_result(equity_curve=(), trades=(), trips=())

    m = compute_metrics(empty)

    assert all(math.isnan(m[k]) for k in METRIC_KEYS)
    assert json_ready(m) == dict.fromkeys(METRIC_KEYS)


def dataclass_result(**fields: Any) -> BacktestResult:
    base: dict[str, Any] = {
        "strategy": "x",
        "params": {},
        "bars": 0,
        "fills": 0,
        "round_trips": 0,
        "realized_pnl": 0.0,
        "net_pnl": 0.0,
        "commissions": 0.0,
        "final_equity": 0.0,
        "max_drawdown": 0.0,
        "elapsed_s": 0.0,
    }
    return BacktestResult(**(base | fields))


def test_display_formats() -> None:
    assert format_metric("cagr", 0.1234) == "12.34%"
    assert format_metric("sharpe", 1.234) == "1.23"
    assert format_metric("avg_loss", -1234.5) == "-1,234.50"
    assert format_metric("turnover", 2.5) == "2.50x"
    assert format_metric("sortino", math.inf) == "inf"
    assert format_metric("sharpe", math.nan) == format_metric("sharpe", None) == "n/a"


# -- where they are kept ---------------------------------------------------------------------------
def test_a_backtest_records_its_metrics_in_its_log_with_the_run_id(tmp_path: Path) -> None:
    db = tmp_path / "bt.duckdb"
    done = run_backtest(
        hourly_bars(20), strategy="sma", symbol="AAPL", params={"fast": 3, "slow": 12}, db_path=db
    )

    with EventLog(db) as log:
        runs = log.runs()
        changes = [e for e in log.read(types=["state_changed"]) if isinstance(e, StateChanged)]
        stored = recorded_metrics(log)
        state = restore(log).state

    assert [r.how for r in runs] == ["clean"]
    assert [(e.path, e.actor) for e in changes] == [(METRICS_PATH, "engine")]
    assert stored == {runs[0].run_id: json_ready(done.metrics)}
    assert state["backtest"]["metrics"] == stored[runs[0].run_id]  # in the state, snapshot too


def test_seamless_backtest_json_prints_the_metrics_object(tmp_path: Path) -> None:
    data = tmp_path / "bars.csv"
    hourly_bars(30).to_csv(data, index=False)

    args = ["--data", str(data), "--symbol", "AAPL", "--strategy", "sma", "--param", "fast=3"]

    run = seamless("backtest", *args, "--param", "slow=12", "--json", cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert set(summary["metrics"]) == set(METRIC_KEYS)
    assert isinstance(summary["metrics"]["sharpe"], float)
    assert summary["metrics"]["max_drawdown"] >= 0
    assert 0 < summary["metrics"]["exposure"] <= 1
