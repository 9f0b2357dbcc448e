"""Backtest throughput: SMA crossover through the full engine against a plain Python loop.

Run: ``python -m bench backtest [--bars N] [--fast F --slow S] [--backtrader] [--json]``.
Generates a seeded random walk of one-minute bars (realistic OHLC), then in the same run:

* a plain Python loop computing the same strategy by the reference rules (same signals, same
  fills at the next bar's open, same P&L) -- the baseline;
* :func:`engine.backtest.run_backtest` with a DuckDB event log in a temporary folder (strategy,
  broker, risk, positions, P&L, state store, event log) -- the full engine;
* the same with the in-memory journal (no DuckDB);
* with ``--backtrader``, backtrader (a pure-Python peer) on the same bars.

Prints bars/s for each, the ratios, and fills / round trips / realized P&L from the engine and
the baseline with whether they agree. Figures only, no pass/fail (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import pandas as pd

from bench import bench_parser, report
from engine.backtest import BacktestResult, run_backtest
from testkit.workload import make_bars

SYMBOL = "BENCH"


def plain_loop(frame: pd.DataFrame, fast: int, slow: int, qty: float) -> dict[str, Any]:
    """The same SMA crossover in plain Python, by the reference rules (backtrader's).

    SMAs are ``math.fsum(window) / n``; a market order placed on a bar's close fills at the
    next bar's open; the decision on a bar sees the position after the fill at that bar's open
    (so a sell filled at the open may be followed by a buy on the same bar's close); long only,
    buys ``qty`` when flat on a cross up (``prev <= 0 < diff``), sells the whole position on a
    cross down (``prev >= 0 > diff``); no commission or slippage (the BrokerConfig defaults).
    """
    opens = frame["open"].tolist()
    closes = frame["close"].tolist()
    start = time.perf_counter()
    fsum = math.fsum
    fast_w: deque[float] = deque(maxlen=fast)
    slow_w: deque[float] = deque(maxlen=slow)
    prev_diff: float | None = None
    position = 0.0
    avg_price = 0.0
    realized = 0.0
    pending: tuple[str, float] | None = None
    fills = trips = 0
    for open_, close in zip(opens, closes, strict=True):
        if pending is not None:  # fill the order placed on the previous bar at this open
            side, q = pending
            pending = None
            fills += 1
            if side == "buy":
                avg_price = open_
                position += q
            else:
                realized += (open_ - avg_price) * q
                position -= q
                trips += 1
        fast_w.append(close)
        slow_w.append(close)
        if len(slow_w) < slow:
            continue
        diff = fsum(fast_w) / fast - fsum(slow_w) / slow
        previous, prev_diff = prev_diff, diff
        if previous is None:
            continue
        if previous <= 0 < diff and position == 0:
            pending = ("buy", qty)
        elif previous >= 0 > diff and position > 0:
            pending = ("sell", position)
    elapsed = time.perf_counter() - start
    return {
        "elapsed_s": elapsed,
        "fills": fills,
        "round_trips": trips,
        "realized_pnl": realized,
        "open_position": position,
    }


def backtrader_run(frame: pd.DataFrame, fast: int, slow: int, qty: float) -> dict[str, Any]:
    """The same strategy in backtrader (a peer engine, pure Python), timed in this run."""
    import backtrader as bt

    class Cross(bt.Strategy):
        def __init__(self) -> None:
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=fast), bt.ind.SMA(period=slow))

        def next(self) -> None:
            if self.cross[0] > 0 and not self.position:
                self.buy(size=qty)
            elif self.cross[0] < 0 and self.position:
                self.close()

    cerebro = bt.Cerebro(stdstats=False)
    bars = frame.set_index(frame["timestamp"].dt.tz_convert(None))
    cerebro.adddata(bt.feeds.PandasData(dataname=bars[["open", "high", "low", "close", "volume"]]))
    cerebro.addstrategy(Cross)
    cerebro.broker.setcash(1e12)
    start = time.perf_counter()
    cerebro.run()
    return {"elapsed_s": time.perf_counter() - start}


def _engine(
    frame: pd.DataFrame, params: dict[str, Any], db: Path | None
) -> tuple[BacktestResult, float]:
    start = time.perf_counter()
    result = run_backtest(frame, strategy="sma_crossover", symbol=SYMBOL, params=params, db_path=db)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("backtest", __doc__, bars=200_000, fast=10, slow=30, qty=100.0, seed=42)
    parser.add_argument("--no-memory", action="store_true", help="skip the in-memory run")
    parser.add_argument(
        "--backtrader", action="store_true", help="also time backtrader on the same bars"
    )
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the plain loop and the engine runs of ``args``; print them, return the figures."""
    params = {"fast": args.fast, "slow": args.slow, "qty": args.qty}
    frame = make_bars(args.bars, args.seed)
    n = len(frame)
    print(f"SMA crossover backtest, {n:,} one-minute bars, fast={args.fast} slow={args.slow}")

    base = plain_loop(frame, args.fast, args.slow, args.qty)
    base_rate = n / base["elapsed_s"]
    figures: dict[str, Any] = {
        "bars": n,
        "params": params,
        "plain_loop": {"bars_per_s": base_rate, **base},
    }

    with tempfile.TemporaryDirectory(prefix="seamless-bench-") as tmp:
        db = Path(tmp) / "bench.duckdb"
        duck, duck_wall = _engine(frame, params, db)
        db_mb = db.stat().st_size / 1e6 if db.exists() else 0.0
    runs: list[tuple[str, BacktestResult, float]] = [("engine+duckdb", duck, duck_wall)]
    if not args.no_memory:
        mem, mem_wall = _engine(frame, params, None)
        runs.append(("engine+memory", mem, mem_wall))

    print(
        f"{'run':<15} {'bars/s':>10} {'wall bars/s':>12} {'vs plain':>9} "
        f"{'fills':>6} {'trips':>6} {'realized':>12}"
    )
    print(
        f"{'plain loop':<15} {base_rate:>10,.0f} {base_rate:>12,.0f} {'1':>9} "
        f"{base['fills']:>6} {base['round_trips']:>6} {base['realized_pnl']:>12.4f}"
    )
    for label, res, wall in runs:
        # bars/s: the bar loop as run_backtest times it; wall: the whole call (loading the
        # frame into events, opening the log, the final flush and close included)
        print(
            f"{label:<15} {res.bars_per_s:>10,.0f} {n / wall:>12,.0f} "
            f"{base_rate / res.bars_per_s:>8.1f}x {res.fills:>6} {res.round_trips:>6} "
            f"{res.realized_pnl:>12.4f}"
        )
        figures[label] = {
            "bars_per_s": res.bars_per_s,
            "wall_bars_per_s": n / wall,
            "vs_plain": base_rate / res.bars_per_s,
            "fills": res.fills,
            "round_trips": res.round_trips,
            "realized_pnl": res.realized_pnl,
        }
    if args.backtrader:
        peer = backtrader_run(frame, args.fast, args.slow, args.qty)
        rate = n / peer["elapsed_s"]
        print(f"{'backtrader':<15} {rate:>10,.0f} {rate:>12,.0f} {base_rate / rate:>8.1f}x")
        figures["backtrader"] = {"bars_per_s": rate, "vs_plain": base_rate / rate}
    print(f"duckdb file: {db_mb:.1f} MB")
    figures["duckdb_mb"] = db_mb
    for label, res, _ in runs:
        agree = (
            res.fills == base["fills"]
            and res.round_trips == base["round_trips"]
            and math.isclose(res.realized_pnl, base["realized_pnl"], rel_tol=1e-9, abs_tol=1e-6)
        )
        print(f"{label} agrees with the plain loop (fills, round trips, realized P&L): {agree}")
        figures[label]["agrees_with_plain_loop"] = agree
    return figures


if __name__ == "__main__":
    main()
