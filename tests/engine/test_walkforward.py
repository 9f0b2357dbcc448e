"""``seamless walkforward``: segments, the test window strictly after its training window, the
warm-up, the stitched out-of-sample equity, the report, and no look-ahead: a segment's result is
the same when every bar after its test window is gone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.research.walkforward import Segment, plan_segments, resolve_warmup
from streams.errors import ConfigError
from tests.engine.test_optimize import SEAMLESS, daily_bars, env

TRAIN, TEST = 120, 40


def walkforward(data: Path, folder: Path, *extra: str) -> dict[str, Any]:
    args = [
        SEAMLESS, "walkforward", "--data", str(data), "--symbol", "TEST", "--strategy", "sma",
        "--space", "fast=2:10", "--space", "slow=12:40:4", "--trials", "6", "--jobs", "2",
        "--seed", "5", "--train-bars", str(TRAIN), "--test-bars", str(TEST), "--json",
        "--results", str(folder), *extra,
    ]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        args, cwd=folder, env=env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One walk-forward on 320 bars, and the same on the bars up to segment 2's test end."""
    folder = tmp_path_factory.mktemp("walkforward")
    frame = daily_bars(320)
    full = folder / "full.csv"
    frame.to_csv(full, index=False)
    cut = folder / "cut.csv"
    frame.iloc[: TRAIN + 2 * TEST].to_csv(cut, index=False)
    return {
        "frame": frame,
        "full": walkforward(full, folder, "--out", str(folder / "wf.html")),
        "cut": walkforward(cut, folder / "cut"),
        "folder": folder,
    }


def test_segments_train_then_test_strictly_after(runs: dict[str, Any]) -> None:
    out = runs["full"]
    frame = runs["frame"]
    stamps = [ts.isoformat() for ts in pd.to_datetime(frame["timestamp"], utc=True)]
    segments = out["segments"]
    assert len(segments) == (320 - TRAIN) // TEST == 5
    for i, seg in enumerate(segments):
        start = i * TEST
        assert seg["train_start"] == stamps[start]
        assert seg["train_end"] == stamps[start + TRAIN - 1]
        assert seg["test_start"] == stamps[start + TRAIN]
        assert seg["test_end"] == stamps[start + TRAIN + TEST - 1]
        assert pd.Timestamp(seg["test_start"]) > pd.Timestamp(seg["train_end"])
        assert seg["test_bars"] == TEST and seg["train_bars"] == TRAIN
        assert set(seg["params"]) == {"fast", "slow"}
        assert seg["warmup_bars"] == seg["params"]["slow"]  # auto: the largest whole number
        for side in ("in_sample", "out_of_sample"):
            figures = seg[side]
            assert {"objective", "net_pnl", "return", "sharpe", "metrics", "fills"} <= set(figures)
        assert seg["out_of_sample"]["bars"] == TEST
        assert seg["in_sample"]["bars"] == TRAIN
        assert seg["trials"] == 6
    assert out["stitching"] == "returns chained from the starting cash"


def test_stitched_equity_chains_the_test_windows(runs: dict[str, Any]) -> None:
    out = runs["full"]
    stitched = out["stitched"]
    equity = stitched["equity"]
    assert len(equity) == 5 * TEST + 1  # the starting point, then every test bar
    assert equity[0][1] == out["starting_cash"] == 100_000
    level = out["starting_cash"]
    for seg in out["segments"]:
        level *= 1 + seg["out_of_sample"]["return"]
    assert stitched["end_equity"] == pytest.approx(level, rel=1e-9)
    assert equity[-1][1] == pytest.approx(level, rel=1e-9)
    assert [e[0] for e in equity[1:]] == sorted(e[0] for e in equity[1:])
    assert stitched["metrics"]["total_return"] == pytest.approx(stitched["return"], rel=1e-6)
    assert stitched["fills"] == sum(s["out_of_sample"]["fills"] for s in out["segments"])


def test_no_segment_result_uses_data_after_its_test_window(runs: dict[str, Any]) -> None:
    full, cut = runs["full"]["segments"], runs["cut"]["segments"]
    assert len(cut) == 2
    assert cut == full[:2]  # same params, same in- and out-of-sample figures


def test_report_and_results_files(runs: dict[str, Any]) -> None:
    out = runs["full"]
    report = Path(out["report"])
    assert report == runs["folder"] / "wf.html"
    page = report.read_text()
    assert 'id="segments-table"' in page and 'id="stitched-table"' in page
    assert page.count('<tr data-segment="') == 5
    assert "cdn.bokeh.org" not in page  # standalone: Bokeh inline
    saved = json.loads(Path(out["results"]).read_text())
    assert saved["segments"] == out["segments"]
    for seg in out["segments"]:  # each segment's study, for the Backtests tab's heatmap
        study = json.loads((runs["folder"] / f"{seg['study']}.json").read_text())
        assert study["best_params"] == seg["params"]
        assert study["rows"] == seg["rows"]["train"]


def test_plan_segments_rolling_anchored_and_errors() -> None:
    assert plan_segments(10, 4, 3) == [Segment(1, 0, 4, 4, 7), Segment(2, 3, 7, 7, 10)]
    assert plan_segments(10, 4, 2, anchored=True) == [
        Segment(1, 0, 4, 4, 6),
        Segment(2, 0, 6, 6, 8),
        Segment(3, 0, 8, 8, 10),
    ]
    with pytest.raises(ConfigError, match="--train-bars 8 \\+ --test-bars 3 = 11 bars"):
        plan_segments(10, 8, 3)
    assert resolve_warmup(None, {"fast": 5, "slow": 30, "qty": 100.0}, 500) == 30
    assert resolve_warmup(None, {"fast": 5, "slow": 30}, 12) == 12
    assert resolve_warmup(0, {"slow": 30}, 500) == 0
