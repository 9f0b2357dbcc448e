"""The sample data sets shipped in data/: they load, match data/README.md, trade, and the
generator data/make_samples.py reproduces them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from engine.backtest import run_backtest
from engine.config import parse_config
from streams.events import BarReceived
from streams.sources import iter_bars, load_replay_table
from streams.sources._frames import read_market_file

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SINGLE = DATA / "aapl_1min_synthetic.parquet"
MULTI = DATA / "aapl_msft_1min_synthetic.parquet"
#: file -> (symbols, rows): the figures data/README.md documents.
SHIPPED = {SINGLE: (("AAPL",), 1_950), MULTI: (("AAPL", "MSFT"), 3_900)}
FIRST = pd.Timestamp("2024-03-04 14:30", tz="UTC")
LAST = pd.Timestamp("2024-03-08 20:59", tz="UTC")
SESSIONS = 5
BARS_PER_SESSION = 390
SMA = {"fast": 10, "slow": 30, "qty": 10}


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.value)


def _symbol_arg(path: Path) -> str | None:
    """The --symbol a file needs: the single-symbol file has no symbol column."""
    symbols, _ = SHIPPED[path]
    return symbols[0] if path == SINGLE else None


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """data/make_samples.py imported from its path (data/ is not a package)."""
    name = "seamless_data_make_samples"
    spec = importlib.util.spec_from_file_location(name, DATA / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in data/
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = keep
    yield module
    sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def regenerated(generator: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("regenerated")
    written = generator.write_samples(out)
    assert sorted(p.name for p in written) == sorted(p.name for p in SHIPPED)
    return out


def test_files_are_small_and_not_git_ignored() -> None:
    for path in SHIPPED:
        assert path.is_file(), path
        assert path.stat().st_size < 1_000_000, f"{path.name} is {path.stat().st_size} bytes"
    shipped = [str(p.relative_to(ROOT)) for p in (*SHIPPED, DATA / "README.md")]
    shipped.append("data/make_samples.py")
    for path in shipped:
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert result.returncode == 1, f"{path} is git-ignored"
    runtime = subprocess.run(
        ["git", "check-ignore", "-q", "data/runtime/seamless.duckdb"], cwd=ROOT, check=False
    )
    assert runtime.returncode == 0, "data/runtime/ must stay git-ignored"


@pytest.mark.parametrize("path", list(SHIPPED), ids=lambda p: p.name)
def test_file_replays_without_rejections(path: Path) -> None:
    symbols, rows = SHIPPED[path]
    events = list(iter_bars(path, _symbol_arg(path)))
    assert all(isinstance(e, BarReceived) for e in events), [
        e for e in events if not isinstance(e, BarReceived)
    ][:3]
    bars: list[BarReceived] = events  # type: ignore[assignment]
    assert len(bars) == rows
    assert Counter(b.symbol for b in bars) == dict.fromkeys(symbols, rows // len(symbols))
    assert {b.interval_s for b in bars} == {60}
    assert min(b.ts_event for b in bars) == _ns(FIRST)
    assert max(b.ts_event for b in bars) == _ns(LAST)
    assert [b.ts_event for b in bars] == sorted(b.ts_event for b in bars)  # file order is time
    table = load_replay_table(path, symbol=_symbol_arg(path))
    assert (table.count, table.first_ts, table.last_ts) == (rows, _ns(FIRST), _ns(LAST))


@pytest.mark.parametrize("path", list(SHIPPED), ids=lambda p: p.name)
def test_bars_cover_us_sessions_only(path: Path) -> None:
    symbols, _ = SHIPPED[path]
    frame = read_market_file(path)
    expected = {"timestamp", "open", "high", "low", "close", "volume"}
    assert set(frame.columns) == expected | ({"symbol"} if len(symbols) > 1 else set())
    local = frame["timestamp"].dt.tz_convert("America/New_York")
    assert (local.dt.day_of_week < 5).all()
    minutes = local.dt.hour * 60 + local.dt.minute
    assert minutes.between(9 * 60 + 30, 16 * 60 - 1).all()
    per_day = local.dt.date.value_counts()
    assert len(per_day) == SESSIONS
    assert (per_day == BARS_PER_SESSION * len(symbols)).all()
    assert not frame.duplicated(
        ["timestamp", "symbol"] if "symbol" in frame.columns else ["timestamp"]
    ).any()
    assert (frame["volume"] > 0).all()
    assert (frame[["open", "close"]].max(axis=1) <= frame["high"]).all()
    assert (frame[["open", "close"]].min(axis=1) >= frame["low"]).all()


def test_two_symbol_file_holds_the_single_symbol_file() -> None:
    single = read_market_file(SINGLE)
    multi = read_market_file(MULTI)
    aapl = multi[multi["symbol"] == "AAPL"].drop(columns="symbol").reset_index(drop=True)
    pd.testing.assert_frame_equal(aapl[list(single.columns)], single)


def test_readme_documents_the_files() -> None:
    text = (DATA / "README.md").read_text(encoding="utf-8")
    for path, (symbols, rows) in SHIPPED.items():
        assert path.name in text
        assert f"{rows:,} rows" in text
        assert all(s in text for s in symbols)
    assert "synthetic" in text.lower()
    assert "2024-03-04 14:30 UTC to 2024-03-08 20:59 UTC" in text
    assert "data/runtime/" in text
    assert "python data/make_samples.py" in text
    assert "--data sample" in text


def test_backtest_over_the_single_symbol_file_trades() -> None:
    result = run_backtest(SINGLE, strategy="sma_crossover", symbol="AAPL", params=SMA)
    frame = read_market_file(SINGLE)
    assert result.bars == len(frame) and result.rejected_bars == 0
    assert len(result.equity_curve) == len(frame)
    assert result.fills > 10 and result.round_trips > 5
    assert {t["symbol"] for t in result.trades} == {"AAPL"}
    assert {t["qty"] for t in result.trades} == {float(SMA["qty"])}
    assert {t["side"] for t in result.trades} == {"buy", "sell"}
    low, high = frame["low"].min(), frame["high"].max()
    assert all(low <= t["price"] <= high for t in result.trades)
    first_ns, last_ns = _ns(FIRST), _ns(LAST)
    assert all(first_ns <= t["ts"] <= last_ns for t in result.trades)
    position = 0.0  # the crossover holds at most one lot, long or flat
    for trade in result.trades:
        position += trade["qty"] if trade["side"] == "buy" else -trade["qty"]
        assert 0.0 <= position <= SMA["qty"]
    assert result.realized_pnl == pytest.approx(sum(t.realized_pnl for t in result.trips))


def test_config_backtest_over_the_two_symbol_file_trades_both() -> None:
    strategies: list[dict[str, Any]] = [
        {"name": f"sma_{s.lower()}", "strategy": "sma_crossover", "symbols": [s], "params": SMA}
        for s in ("AAPL", "MSFT")
    ]
    config = parse_config(
        {
            "feed": {"kind": "parquet", "path": str(MULTI), "symbols": ["AAPL", "MSFT"]},
            "strategies": strategies,
        },
        env={},
    )
    result = run_backtest(config=config)
    assert result.bars == SHIPPED[MULTI][1] and result.rejected_bars == 0
    by_strategy = Counter((t["strategy"], t["symbol"]) for t in result.trades)
    assert set(by_strategy) == {("sma_aapl", "AAPL"), ("sma_msft", "MSFT")}
    assert all(count > 10 for count in by_strategy.values())
    assert result.fills == sum(by_strategy.values())


def test_generator_reproduces_the_data(regenerated: Path) -> None:
    for path in SHIPPED:
        fresh = pq.read_table(regenerated / path.name)
        shipped = pq.read_table(path)
        assert fresh.equals(shipped, check_metadata=True), path.name
