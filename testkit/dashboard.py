"""Headless Chromium and a fast in-process engine config, for the dashboard tests and the
browser benchmarks (``ui_latency``, ``load``, ``page_cost``).

Chromium is Debian's ``chromium`` package, installed with ``apt-get`` when missing: a test that
needs it fails when it cannot be had, it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Debian chromium binary, installed with apt-get when missing (fails, never skips)."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )
    if found:
        return found
    cmd = "apt-get update && apt-get install -y chromium"
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if proc.returncode != 0 or not found:
        pytest.fail(f"cannot install chromium ({cmd}): {proc.stderr[-2000:]}")
    return found


def engine_config(tmp: Path, **dashboard: Any) -> Any:
    """A fast test engine: synthetic ticks, a quick SMA strategy, temp DuckDB and prefs;
    ``dashboard`` overrides keys of the dashboard section."""
    from engine.config import parse_config

    return parse_config(
        {
            "storage": {"db_path": str(tmp / "engine.duckdb")},
            "broker": {"account_path": str(tmp / "paper_broker.json")},
            "feed": {"kind": "synthetic", "rate": 20.0, "symbols": ["AAPL"]},
            "strategies": [
                {
                    "name": "sma_aapl",
                    "strategy": "sma_crossover",
                    "symbols": ["AAPL"],
                    "params": {"fast": 3, "slow": 8, "qty": 10.0},
                }
            ],
            "dashboard": {
                "pnl_throttle_s": 0.5,
                "runner_throttle_s": 0.5,
                "market_sample_s": 0.5,
                "prefs_dir": str(tmp / "ui_prefs"),
                **dashboard,
            },
        },
        env={},
    )
