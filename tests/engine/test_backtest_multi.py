"""Backtests of several symbols: the real daily bars of AAPL and MSFT (bokeh-sampledata) through
the one kernel, compared with the two single-symbol runs of the same bars."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.backtest import BacktestResult, run_backtest
from engine.cli import main as cli_main
from engine.config import BrokerConfig
from streams.errors import ConfigError
from streams.sources import load_sample_bars

SMA = {"fast": 10, "slow": 30, "qty": 100.0}
# A commission, so the per-symbol commissions are figures to compare, not zeros.
BROKER = BrokerConfig(commission_per_unit=0.01, commission_min=1.0)
CASH = 1_000_000.0


def run(data: Any, symbol: Any = None) -> BacktestResult:
    return run_backtest(
        data,
        strategy="sma_crossover",
        symbol=symbol,
        params=SMA,
        broker=BROKER,
        starting_cash=CASH,
    )


def fills_of(result: BacktestResult, symbol: str) -> list[tuple[Any, ...]]:
    """A symbol's fills without their ids (an order id counts the strategy's orders)."""
    return [
        (t["ts"], t["side"], t["qty"], t["price"], t["commission"])
        for t in result.trades
        if t["symbol"] == symbol
    ]


def figures(result: BacktestResult) -> dict[str, Any]:
    summary = result.summary()
    del summary["elapsed_s"], summary["bars_per_s"]
    return summary


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    return {s: load_sample_bars(s) for s in ("AAPL", "MSFT")}


@pytest.fixture(scope="module")
def singles(bars: dict[str, pd.DataFrame]) -> dict[str, BacktestResult]:
    return {s: run(frame, s) for s, frame in bars.items()}


@pytest.fixture(scope="module")
def pair(bars: dict[str, pd.DataFrame]) -> BacktestResult:
    return run([bars["AAPL"], bars["MSFT"]], ["AAPL", "MSFT"])


@pytest.fixture(scope="module")
def files(
    bars: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("multi")
    paths = {s: folder / f"{s.lower()}.csv" for s in bars}
    for symbol, frame in bars.items():
        frame.to_csv(paths[symbol], index=False)
    # One file, grouped by symbol (MSFT's rows first): the replay merges it in time.
    both = pd.concat([bars["MSFT"].assign(symbol="MSFT"), bars["AAPL"].assign(symbol="AAPL")])
    paths["both"] = folder / "both.csv"
    both.to_csv(paths["both"], index=False)
    return paths


def test_each_symbol_of_a_two_symbol_run_equals_its_single_symbol_run(
    singles: dict[str, BacktestResult], pair: BacktestResult
) -> None:
    for symbol, single in singles.items():
        assert fills_of(pair, symbol) == fills_of(single, symbol) != []
        row, alone = pair.per_symbol[symbol], single.per_symbol[symbol]
        assert row == alone
        assert row["realized_pnl"] == single.realized_pnl
        assert row["commissions"] == pytest.approx(single.commissions)
        assert (row["fills"], row["round_trips"]) == (single.fills, single.round_trips)
    rows = pair.per_symbol.values()
    assert pair.realized_pnl == pytest.approx(sum(r["realized_pnl"] for r in rows))
    assert pair.commissions == pytest.approx(sum(r["commissions"] for r in rows))
    assert pair.fills == sum(r["fills"] for r in rows) == len(pair.trades)
    assert pair.round_trips == sum(r["round_trips"] for r in rows)
    assert pair.bars == singles["AAPL"].bars + singles["MSFT"].bars
    # One strategy instance trades both, as a live config's symbols list makes it.
    assert pair.params["symbols"] == ["AAPL", "MSFT"]


def test_the_equity_curve_has_one_point_per_timestamp_and_the_metrics_are_on_it(
    bars: dict[str, pd.DataFrame], pair: BacktestResult
) -> None:
    times = [ts for ts, _ in pair.equity_curve]
    stamps = pd.concat([bars["AAPL"]["timestamp"], bars["MSFT"]["timestamp"]])
    distinct = sorted(set(pd.to_datetime(stamps, utc=True).astype("int64")))

    assert times == distinct
    assert all(a < b for a, b in itertools.pairwise(times))
    assert pair.equity_curve[-1][1] == pytest.approx(pair.final_equity)
    assert pair.metrics["total_return"] == pytest.approx(pair.final_equity / CASH - 1)


def test_symbols_with_different_timestamps_give_the_union_of_their_times(
    bars: dict[str, pd.DataFrame],
) -> None:
    msft = bars["MSFT"].iloc[::3].reset_index(drop=True)  # every third day only

    result = run([bars["AAPL"], msft], ["AAPL", "MSFT"])

    times = [ts for ts, _ in result.equity_curve]
    assert times == sorted(set(pd.to_datetime(bars["AAPL"]["timestamp"]).astype("int64")))
    assert result.bars == len(bars["AAPL"]) + len(msft)
    assert fills_of(result, "MSFT") == fills_of(run(msft, "MSFT"), "MSFT")


def test_one_file_with_a_symbol_column_equals_the_two_files(
    files: dict[str, Path], pair: BacktestResult, singles: dict[str, BacktestResult]
) -> None:
    from_files = run([str(files["AAPL"]), str(files["MSFT"])], ["AAPL", "MSFT"])
    from_column = run(str(files["both"]))

    assert figures(from_column) == figures(from_files) == figures(pair)
    assert from_column.trades == from_files.trades
    assert from_column.equity_curve == from_files.equity_curve
    # --symbol picks one symbol of the column: the single-symbol run of its bars.
    only_msft = run(str(files["both"]), ["MSFT"])
    assert fills_of(only_msft, "MSFT") == fills_of(singles["MSFT"], "MSFT")
    assert list(only_msft.per_symbol) == ["MSFT"]


def test_bad_symbol_arguments_are_refused_naming_the_argument(
    bars: dict[str, pd.DataFrame], files: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError, match=r"--data is given 2 times but --symbol 1 times"):
        run([bars["AAPL"], bars["MSFT"]], ["AAPL"])
    with pytest.raises(ConfigError, match=r"--symbol 'AAPL' is given twice"):
        run([bars["AAPL"], bars["MSFT"]], ["AAPL", "aapl"])
    with pytest.raises(ConfigError, match=r"--symbol 'GOOG' is not in --data '.*both.csv'"):
        run(str(files["both"]), ["AAPL", "GOOG"])
    with pytest.raises(ConfigError, match=r"has no 'symbol' column.*--symbol names 2"):
        run(str(files["AAPL"]), ["AAPL", "MSFT"])


def cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = cli_main(["backtest", "--strategy", "sma_crossover", *args], out=out)
    return code, out.getvalue()


def test_the_cli_runs_several_files_and_prints_per_symbol(
    files: dict[str, Path], singles: dict[str, BacktestResult]
) -> None:
    params = ["--param", "fast=10", "--param", "slow=30", "--param", "qty=100"]
    cash = ["--cash", str(CASH)]
    two = ["--data", str(files["AAPL"]), "--data", str(files["MSFT"])]

    code, out = cli([*two, "--symbol", "AAPL", "--symbol", "MSFT", *params, *cash, "--json"])

    assert code == 0
    summary = json.loads(out)
    assert set(summary["per_symbol"]) == {"AAPL", "MSFT"}
    for symbol, row in summary["per_symbol"].items():
        # The CLI's broker has no commission: the P&L before costs equals the runs above.
        assert row["realized_pnl"] == pytest.approx(singles[symbol].realized_pnl)
        assert row["fills"] == singles[symbol].fills
    code, text = cli(["--data", str(files["both"]), *params, *cash])
    assert code == 0
    table = text.splitlines()[-3:]
    assert table[0].split() == [
        "symbol",
        "fills",
        "trips",
        "realized",
        "commissions",
        "net",
        "position",
    ]
    assert [line.split()[0] for line in table[1:]] == ["AAPL", "MSFT"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{AAPL}", "--data", "{MSFT}", "--symbol", "AAPL"], "--data is given 2 times"),
        (["--data", "{both}", "--symbol", "AAPL", "--symbol", "IBM"], "--symbol 'IBM' is not in"),
        (["--data", "{both}", "--symbol", "MSFT", "--symbol", "msft"], "is given twice"),
        (["--data", "sample", "--symbol", "AAPL", "--symbol", "AAPL"], "is given twice"),
    ],
)
def test_the_cli_names_the_bad_argument(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    filled = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]

    code, out = cli(filled)

    assert (code, out) == (1, "")
    assert message in capsys.readouterr().err
