"""The ``seamless`` command line, run as a real process: help, usage errors, clear one-line
failures, backtest JSON, events/state with time travel, and a DB held by a running engine."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from persistence import EventLog, restore
from state import state_to_dict
from state.fold import replay
from testkit.engine_process import SEAMLESS, env, seamless

COMMANDS = ["demo", "events", "state", "report", "run", "backtest"]
SMA_CLASS = "engine.strategies.sma_crossover.SmaCrossover"


def backtest(
    data: Path | str, symbol: str, strategy: str, *extra: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``seamless backtest --data DATA --symbol SYMBOL --strategy STRATEGY EXTRA...``."""
    return seamless(
        "backtest", "--data", str(data), "--symbol", symbol, "--strategy", strategy, *extra, cwd=cwd
    )


def params(**values: object) -> list[str]:
    """``--param KEY=VALUE`` for each of ``values``."""
    return [arg for key, value in values.items() for arg in ("--param", f"{key}={value}")]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name in names:
        assert name in lines[0]


def write_bars(path: Path, closes: list[float]) -> Path:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-02", periods=len(closes), freq="1D"),
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "volume": [1000] * len(closes),
        }
    )
    frame.to_csv(path, index=False)
    return path


def zigzag(n: int = 120) -> list[float]:
    return [
        100.0 + 10 * ((i // 7) % 2) + (i % 7) * (1 if (i // 7) % 2 == 0 else -1) for i in range(n)
    ]


@pytest.fixture(scope="module")
def backtest_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bt")
    data, db = write_bars(folder / "bars.csv", zigzag()), folder / "bt.duckdb"
    sma = params(fast=2, slow=5, qty=10)
    result = backtest(data, "AAPL", "sma", *sma, "--db", str(db), "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    return db


# -- help and usage --------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [*COMMANDS, None])
def test_help_exits_zero_and_describes_the_command(command: str | None, tmp_path: Path) -> None:
    args = [command, "--help"] if command else ["--help"]

    result = seamless(*args, cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith("usage: seamless")
    if command is None:
        assert all(c in result.stdout for c in [*COMMANDS, "serve"])


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["events"],
        ["report"],
        ["events", "--db", "x.duckdb", "--since", "-1"],
        ["state", "--db", "x.duckdb", "--at", "soon"],
        ["run", "--print-events", "some"],
        ["backtest", "--data", "x.csv", "--symbol", "AAPL", "--strategy", "sma", "--cash", "lots"],
    ],
)
def test_bad_arguments_exit_2_with_usage(args: list[str], tmp_path: Path) -> None:
    result = seamless(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert "usage: seamless" in result.stderr
    assert "Traceback" not in result.stderr


# -- one-line failures ---------------------------------------------------------------------------
def test_a_missing_data_file_is_named(tmp_path: Path) -> None:
    result = backtest("missing.csv", "AAPL", "sma", cwd=tmp_path)

    assert_one_line_error(result, "seamless backtest: error:", "missing.csv")


def test_a_bad_config_key_is_named_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("feed:\n  kindd: synthetic\n", encoding="utf-8")

    result = seamless("run", "--config", "bad.yaml", cwd=tmp_path)

    assert_one_line_error(result, "bad.yaml", "feed.kindd")
    assert not (tmp_path / "data").exists()  # nothing was opened or written


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = seamless("run", "--config", "nowhere.yaml", cwd=tmp_path)

    assert_one_line_error(result, "nowhere.yaml")


def test_a_missing_event_log_is_named(tmp_path: Path) -> None:
    for command in ("events", "state", "report"):
        assert_one_line_error(
            seamless(command, "--db", "none.duckdb", cwd=tmp_path),
            f"seamless {command}: error:",
            "none.duckdb",
        )


@pytest.mark.parametrize(
    ("strategy", "extra", "names"),
    [
        ("sma", ["--param", "fast=50"], ["fast (50) must be smaller than slow"]),
        ("sma", ["--param", "speed=3"], ["unknown parameter 'speed'"]),
        ("sma", ["--param", "fast"], ["--param expects KEY=VALUE", "'fast'"]),
        ("no.such.Strategy", [], ["no.such.Strategy"]),
    ],
)
def test_bad_strategy_arguments_are_named(
    strategy: str, extra: list[str], names: list[str], tmp_path: Path
) -> None:
    data = write_bars(tmp_path / "bars.csv", zigzag(40))

    result = backtest(data, "AAPL", strategy, *extra, cwd=tmp_path)

    assert_one_line_error(result, *names)


# -- backtest --------------------------------------------------------------------------------------
def test_backtest_json_prints_one_object_with_the_figures(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "bars.csv", zigzag())
    sma = params(fast=2, slow=5, qty=10)

    result = backtest(data, "aapl", SMA_CLASS, *sma, "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    summary: dict[str, Any] = json.loads(lines[0])
    assert {"bars", "fills", "round_trips", "realized_pnl", "elapsed_s"} <= set(summary)
    assert summary["bars"] == 120
    assert summary["fills"] > 0 and summary["round_trips"] == summary["fills"] // 2
    assert summary["params"] == {"fast": 2, "slow": 5, "qty": 10.0, "symbols": ["AAPL"]}


def test_backtest_text_report_names_the_figures(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "bars.csv", zigzag())

    result = backtest(data, "AAPL", "sma", *params(fast=2, slow=5), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    for word in ("round trips", "realized P&L", "max drawdown", "Sharpe", "bars/s"):
        assert word in result.stdout


def test_backtest_on_the_bundled_sample_data(tmp_path: Path) -> None:
    result = backtest("sample", "MSFT", "zscore", "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bars"] > 1000


# -- events and state ------------------------------------------------------------------------------
def test_events_json_prints_every_event_in_seq_order(backtest_db: Path) -> None:
    result = seamless("events", "--db", str(backtest_db), "--json", cwd=backtest_db.parent)

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    with EventLog(backtest_db) as log:
        stored = log.read()
    assert [(e["seq"], e["event_id"], e["type"]) for e in events] == [
        (e.seq, e.event_id, e.type) for e in stored
    ]


def test_events_filters_by_topic_and_since(backtest_db: Path) -> None:
    result = seamless(
        "events",
        "--db",
        str(backtest_db),
        "--topic",
        "fills.*",
        "--since",
        "20",
        "--json",
        cwd=backtest_db.parent,
    )

    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and all(e["type"] == "trade_executed" and e["seq"] > 20 for e in events)


def test_state_at_an_earlier_seq_is_time_travel_equal_to_a_replay_up_to_it(
    backtest_db: Path,
) -> None:
    with EventLog(backtest_db) as log:
        events = log.read()
    first_fill = next(e.seq for e in events if e.type == "trade_executed")
    at = first_fill - 1

    now = seamless("state", "--db", str(backtest_db), "--json", cwd=backtest_db.parent)
    then = seamless(
        "state", "--db", str(backtest_db), "--at", str(at), "--json", cwd=backtest_db.parent
    )

    assert now.returncode == 0 and then.returncode == 0, then.stderr
    latest, earlier = json.loads(now.stdout), json.loads(then.stdout)
    assert earlier["seq"] == at and latest["seq"] == events[-1].seq
    assert earlier["state"] != latest["state"]
    assert earlier["state"]["positions"].get("AAPL", {}).get("qty", 0.0) == 0.0
    expected = json.loads(json.dumps(state_to_dict(replay([e for e in events if e.seq <= at]))))
    assert earlier["state"] == expected


def test_state_text_report_shows_cash_and_positions(backtest_db: Path) -> None:
    result = seamless("state", "--db", str(backtest_db), cwd=backtest_db.parent)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("state as of seq")
    assert "cash" in result.stdout and "AAPL" in result.stdout


def test_demo_writes_restores_and_agrees(tmp_path: Path) -> None:
    result = seamless("demo", "--db", "demo.duckdb", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["restore_equals_live"] and summary["restore_equals_full_replay"]


# -- a DB held by a running engine -----------------------------------------------------------------
def test_a_db_held_by_a_running_engine_is_reported_clearly_and_the_engine_stops_clean(
    tmp_path: Path,
) -> None:
    config = {
        "storage": {"db_path": "held.duckdb"},
        "broker": {"account_path": "broker.json"},
        "feed": {"kind": "none"},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    engine = subprocess.Popen(
        [SEAMLESS, "run", "--config", "cfg.yaml"],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert engine.stderr is not None
        deadline = time.monotonic() + 30
        line = ""
        while "running on" not in line and time.monotonic() < deadline:
            line = engine.stderr.readline()
        assert "running on" in line

        for command in ("events", "state"):
            result = seamless(command, "--db", "held.duckdb", cwd=tmp_path)
            assert_one_line_error(
                result, "held.duckdb", "held by another process", f"PID {engine.pid}"
            )
    finally:
        engine.send_signal(signal.SIGTERM)
        status = engine.wait(30)

    assert status == 0
    with EventLog(tmp_path / "held.duckdb") as log:
        assert [r.how for r in log.runs()] == ["clean"]
        assert restore(log).seq == log.last_seq


# -- errors in the data or the config name the field and the value, and lose nothing -----------
def test_a_bad_row_in_a_backtest_is_named_and_the_other_rows_still_run(tmp_path: Path) -> None:
    (tmp_path / "bars.csv").write_text(
        "timestamp,open,high,low,close\n"
        "2020-01-01,1,2,0.5,1.5\n"
        "2020-01-02,1,2,0.5,abc\n"
        "2020-01-03,1,2,0.5,1.6\n"
    )

    result = backtest("bars.csv", "X", "sma", "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "close=abc" in result.stderr and "not a number" in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["bars"], summary["rejected_bars"]) == (2, 1)


@pytest.mark.parametrize("command", ["run", "backtest"])
def test_a_missing_feed_file_is_named_by_its_key_and_no_log_is_written(
    command: str, tmp_path: Path
) -> None:
    config = {
        "storage": {"db_path": "live.duckdb"},
        "broker": {"account_path": "broker.json"},
        "feed": {"kind": "csv", "path": "nope.csv", "symbols": ["AAPL"], "loop": False},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    result = seamless(command, "--config", "cfg.yaml", cwd=tmp_path)

    assert result.returncode == 1
    assert "feed.path 'nope.csv'" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "live.duckdb").exists()


def test_a_backtest_never_overwrites_an_existing_log(tmp_path: Path) -> None:
    (tmp_path / "old.duckdb").write_bytes(b"an event log someone kept")

    result = backtest("sample", "AAPL", "sma", "--db", "old.duckdb", cwd=tmp_path)

    assert result.returncode == 1
    assert "--db 'old.duckdb': the file exists" in result.stderr
    assert (tmp_path / "old.duckdb").read_bytes() == b"an event log someone kept"
