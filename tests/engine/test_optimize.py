"""``seamless optimize``: real worker processes, real Optuna, real backtests.

The result is what a re-run of ``seamless backtest`` gives; seeded runs repeat themselves;
a journal file resumes a study, Ctrl-C keeps the finished trials, two processes share one
PostgreSQL study without reusing a trial number; bad input gets one clear line naming the
argument. Small trial counts on a small generated frame (and the AAPL sample where a trial
must take a while).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from engine.cli import main as cli_main
from engine.research.optimize import run_search
from engine.research.optuna_study import SearchSpec
from engine.research.pool import TrialPool
from engine.research.search import (
    check_corners,
    parse_space,
    resolve_objective,
)
from engine.research.studies import heatmap, read_json
from engine.research.trials import RunSetup, TableWindow, load_table
from engine.strategies import SmaCrossover
from streams.errors import ConfigError, SeamlessError
from testkit.engine_process import SEAMLESS, env, seamless


def daily_bars(n: int = 320, seed: int = 5) -> pd.DataFrame:
    """A seeded random walk of daily bars with trends that make SMA crossovers trade."""
    rng = random.Random(seed)
    price, drift = 100.0, 0.0
    rows = []
    for i in range(n):
        if i % 40 == 0:
            drift = rng.uniform(-0.004, 0.004)
        open_ = price
        close = max(1.0, open_ * math.exp(drift + rng.gauss(0, 0.012)))
        rows.append((open_, max(open_, close) * 1.004, min(open_, close) * 0.996, close))
        price = close
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-01", periods=n, freq="1D", tz="UTC"),
            "open": [r[0] for r in rows],
            "high": [r[1] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[3] for r in rows],
            "volume": 1000.0,
        }
    )


@pytest.fixture(scope="module")
def bars_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("optimize") / "bars.csv"
    daily_bars().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def pool(bars_csv: Path) -> Iterator[TrialPool]:
    """Two worker processes on the small frame, shared by the API-level tests."""
    setup = RunSetup(str(bars_csv), "TEST", "sma_crossover", {}, resolve_objective("net_pnl"))
    with TrialPool(setup, 2) as workers:
        yield workers


SPACE = ["--space", "fast=2:12", "--space", "slow=15:60:5"]


# -- the command, end to end ---------------------------------------------------------------------
def test_optimize_json_reruns_exactly_and_a_journal_resumes(bars_csv: Path, tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    common = [
        "optimize", "--data", str(bars_csv), "--symbol", "TEST", "--strategy", "sma_crossover",
        *SPACE, "--objective", "net_pnl", "--jobs", "2", "--seed", "11", "--json",
        "--storage", str(journal), "--study", "s1", "--results", str(tmp_path / "studies"),
    ]  # fmt: skip
    first = seamless(*common, "--trials", "8", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["trials"] == 8 and len(out["table"]) == 8
    assert [row["number"] for row in out["table"]] == list(range(8))
    for row in out["table"]:
        assert set(row) >= {"number", "params", "value", "state"}
        assert set(row["params"]) == {"fast", "slow"}
    assert set(out["best_params"]) == {"fast", "slow"}
    assert out["best_value"] == max(r["value"] for r in out["table"] if r["state"] == "COMPLETE")
    assert "trials/min" in first.stderr  # the rate, printed at the end
    # stored with the runs: the study file holds what --json printed
    stored = read_json(out["results"])
    assert stored["best_params"] == out["best_params"] and stored["table"] == out["table"]

    # a re-run of the best params through `seamless backtest` gives exactly the best value
    params = [a for k, v in out["best_params"].items() for a in ("--param", f"{k}={v}")]
    again = seamless(
        "backtest", "--data", str(bars_csv), "--symbol", "TEST", "--strategy", "sma_crossover",
        *params, "--json", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["net_pnl"] == out["best_value"]

    # the same study in the journal file, asked for 12: four more, the first eight kept
    second = seamless(*common, "--trials", "12", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    resumed = json.loads(second.stdout)
    assert resumed["trials"] == 12 and resumed["ran"] + resumed["refused"] == 4
    assert [row["number"] for row in resumed["table"]] == list(range(12))
    assert resumed["table"][:8] == out["table"]


def test_bad_input_gets_one_line_naming_the_argument(
    bars_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["optimize", "--data", str(bars_csv), "--symbol", "TEST", "--strategy", "sma"]
    cases = [
        (["--space", "fast=20:5"], "--space 'fast=20:5': LOW (20) is above HIGH (5)"),
        (["--space", "fats=2:5"], "has no parameter 'fats' (known: fast, qty, slow)"),
        (["--space", "fast=1.5:4"], "is not a whole number"),
        (["--space", "fast=0:4"], "out of the parameter's bounds"),
        (["--space", "fast=5"], "fix a single value with --param fast=5"),
        (["--space", "fast=40:60", "--space", "slow=10:30"], "refuses every corner"),
        (["--space", "fast=2:5", "--objective", "alpha"], "--objective 'alpha' is not a figure"),
        (["--space", "qty=1:5", "--sampler", "grid"], "the grid sampler needs a STEP"),
        (["--space", "fast=2:5", "--param", "fast=3"], "also fixed by --param"),
        (["--space", "fast=2:5", "--param", "speed=3"], "--param speed: strategy SmaCrossover"),
        (["--space", "fast=2:5", "--data", "missing.csv"], "--data 'missing.csv'"),
    ]
    for extra, message in cases:
        assert cli_main([*base, *extra]) == 1, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("seamless optimize: error: "), err
        assert message in err[-1], (extra, err)
    # the unknown objective's message lists the known ones, both kinds
    cli_main([*base, "--space", "fast=2:5", "--objective", "alpha"])
    err = capsys.readouterr().err
    for known in ("net_pnl", "sharpe", "max_drawdown", "sortino", "metrics.max_drawdown"):
        assert known in err
    with pytest.raises(SystemExit) as usage:  # argparse: exit 2
        cli_main([*base, "--space", "fast=2:5", "--jobs", "0"])
    assert usage.value.code == 2


def test_help_lists_and_describes_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {
        "--help": ["optimize", "walkforward"],
        "optimize": ["--space", "--objective", "--storage", "--seed", "--jobs"],
        "walkforward": ["--space", "--train-bars", "--test-bars", "--anchored", "--warmup"],
    }
    for command, words in expected.items():
        with pytest.raises(SystemExit) as done:
            cli_main([command, "--help"] if command != "--help" else ["--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith("usage: seamless")
        assert all(word in text for word in words), (command, text)


def test_a_partly_refused_space_runs_and_says_so(bars_csv: Path, tmp_path: Path) -> None:
    result = seamless(
        "optimize", "--data", str(bars_csv), "--symbol", "TEST", "--strategy", "sma_crossover",
        "--space", "fast=5:30:5", "--space", "slow=10:30:10", "--sampler", "grid", "--json",
        "--results", str(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "refuses part of the space" in result.stderr
    out = json.loads(result.stdout)
    assert out["trials"] == 18  # the whole grid, each point once
    assert len({json.dumps(r["params"], sort_keys=True) for r in out["table"]}) == 18
    refused = [r for r in out["table"] if "refused" in r]
    assert refused and all(r["params"]["fast"] >= r["params"]["slow"] for r in refused)
    assert all(r["state"] == "FAIL" and "must be smaller" in r["refused"] for r in refused)
    assert all(
        r["params"]["fast"] < r["params"]["slow"] for r in out["table"] if "refused" not in r
    )


# -- the library ---------------------------------------------------------------------------------
def test_seeded_searches_repeat_and_differ_by_seed(bars_csv: Path, pool: TrialPool) -> None:
    space = parse_space(["fast=2:12", "slow=15:60"], SmaCrossover)

    def table(seed: int, name: str) -> list[tuple[Any, ...]]:
        spec = SearchSpec(pool.setup, space, trials=14, seed=seed, study=name)
        outcome = run_search(spec, pool, SmaCrossover)
        assert outcome.trials == 14 and not outcome.interrupted
        return [(r["number"], r["params"], r["value"], r["state"]) for r in outcome.table]

    first, again, other = table(3, "a"), table(3, "b"), table(4, "c")
    assert first == again  # beyond TPE's 10 random start-up trials too
    assert first != other


def test_a_window_of_the_table_is_a_backtest_of_those_rows(bars_csv: Path, pool: TrialPool) -> None:
    from engine.backtest import run_backtest

    table = load_table(str(bars_csv), "TEST")
    frame = pd.read_csv(bars_csv)
    window = TableWindow(table, 100, 250)
    assert window.count == 150
    assert window.first_ts == table.ts.values[100] and window.last_ts == table.ts.values[249]
    params = {"fast": 4, "slow": 20}
    via_window = run_backtest(window, strategy="sma", symbol="TEST", params=params)
    via_frame = run_backtest(frame.iloc[100:250], strategy="sma", symbol="TEST", params=params)
    assert via_window.summary() | {"elapsed_s": 0, "bars_per_s": 0} == via_frame.summary() | {
        "elapsed_s": 0,
        "bars_per_s": 0,
    }
    assert via_window.bars == 150
    # the same rows searched in a worker give that run's value
    space = parse_space(["fast=4:4", "slow=20:20"], SmaCrossover)
    spec = SearchSpec(pool.setup, space, trials=1, study="w", start=100, stop=250)
    assert run_search(spec, pool, SmaCrossover).best_value == via_frame.summary()["net_pnl"]


def test_a_broken_worker_stops_the_search_with_its_error(tmp_path: Path) -> None:
    # the parent checks the data first; here the file is gone before the workers read it
    setup = RunSetup(str(tmp_path / "gone.csv"), "TEST", "sma", {}, resolve_objective("net_pnl"))
    space = parse_space(["fast=2:5", "slow=10:20"], SmaCrossover)
    with TrialPool(setup, 1) as workers, pytest.raises(SeamlessError) as failed:
        run_search(SearchSpec(setup, space, trials=50, study="b"), workers, SmaCrossover)
    assert "the worker could not start" in str(failed.value)
    assert "gone.csv" in str(failed.value)


def test_space_and_objective_parsing() -> None:
    space = parse_space(["fast=2:10:2", "qty=50:100:25", "slow=20,30"], SmaCrossover)
    assert space["fast"].grid() == [2, 4, 6, 8, 10]
    assert space["qty"].kind == "float" and space["qty"].grid() == [50.0, 75.0, 100.0]
    assert space["slow"].kind == "categorical" and space["slow"].choices == (20, 30)
    assert check_corners(SmaCrossover, space, {}) == []
    refused = check_corners(
        SmaCrossover, parse_space(["fast=5:25", "slow=20:40"], SmaCrossover), {}
    )
    assert [params for params, _ in refused] == [{"fast": 25, "slow": 20}]
    with pytest.raises(ConfigError, match="not a multiple of STEP"):
        parse_space(["fast=2:10:3"], SmaCrossover)
    assert resolve_objective("net_pnl").direction == "maximize"
    assert resolve_objective("max_drawdown").direction == "minimize"
    assert resolve_objective("max_drawdown").source == "summary"
    assert resolve_objective("metrics.max_drawdown").source == "metrics"
    assert resolve_objective("sortino").source == "metrics"
    assert resolve_objective("sharpe", "minimize").direction == "minimize"


def test_heatmap_cells_hold_the_best_trial() -> None:
    payload = {
        "direction": "maximize",
        "table": [
            {"number": 0, "params": {"a": 1, "b": 10}, "value": 1.0, "state": "COMPLETE"},
            {"number": 1, "params": {"a": 1, "b": 10}, "value": 3.0, "state": "COMPLETE"},
            {"number": 2, "params": {"a": 2, "b": 10}, "value": 2.0, "state": "COMPLETE"},
            {"number": 3, "params": {"a": 2, "b": 20}, "value": None, "state": "FAIL"},
        ],
    }
    cells = heatmap(payload, "a", "b")
    assert cells[["x", "y", "value", "trials", "best_trial"]].values.tolist() == [
        ["1", "10", 3.0, 2, 1],
        ["2", "10", 2.0, 1, 2],
    ]
    many = {"direction": "minimize", "table": [
        {"number": i, "params": {"a": i, "b": 0.1 * i}, "value": float(i), "state": "COMPLETE"}
        for i in range(40)
    ]}  # fmt: skip
    cells = heatmap(many, "a", "b", bins=4)
    assert cells.attrs["x_factors"] == ["0 to 9", "10 to 19", "20 to 29", "30 to 39"]
    assert cells["value"].tolist() == [0.0, 10.0, 20.0, 30.0]  # the lowest of each cell


# -- Ctrl-C and a shared PostgreSQL study ----------------------------------------------------------
def _journal_trials(path: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not path.exists():
        return []
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    except KeyError:
        return []


def test_ctrl_c_keeps_the_finished_trials_and_exits_130(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    args = [
        SEAMLESS, "optimize", "--data", "sample", "--symbol", "AAPL", "--strategy", "sma",
        "--space", "fast=2:30", "--space", "slow=40:120", "--trials", "300", "--jobs", "1",
        "--seed", "1", "--storage", str(journal), "--study", "cc", "--json",
        "--results", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: Ctrl-C reaches parent and workers
    )
    try:
        deadline = time.monotonic() + 60
        while sum(t.state.is_finished() for t in _journal_trials(journal, "cc")) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial finished in 60 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "best so far net_pnl" in err
    assert "Traceback" not in err
    printed = json.loads(out)
    assert printed["interrupted"] and printed["best_params"]
    trials = _journal_trials(journal, "cc")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 3
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert printed["complete"] == len(complete)
    assert printed["trials"] + sum(bool(t.user_attrs.get("interrupted")) for t in trials) == len(
        trials
    )


def test_two_processes_share_one_postgresql_study(pg_dsn: str, tmp_path: Path) -> None:
    args = [
        SEAMLESS, "optimize", "--data", "sample", "--symbol", "AAPL", "--strategy", "sma",
        "--space", "fast=2:30", "--space", "slow=40:120", "--trials", "14", "--jobs", "1",
        "--storage", pg_dsn, "--study", "shared", "--json",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*args, "--results", str(tmp_path / f"p{i}")],
            cwd=tmp_path,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(json.loads(out))
    storage = optuna.storages.RDBStorage(pg_dsn.replace("postgresql://", "postgresql+psycopg://"))
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    counted = [t for t in trials if not t.user_attrs.get("over_budget")]
    assert len(counted) == 14  # together, the requested trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # no trial number twice
    assert sum(o["ran"] + o["refused"] for o in outs) == 14
    assert all(o["ran"] > 0 for o in outs), [o["ran"] for o in outs]  # both did some
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
    assert outs[0]["storage"].startswith("postgresql://postgres@127.0.0.1")
