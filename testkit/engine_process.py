"""The ``seamless`` CLI as a child process, trading the crash tests' fast synthetic config.

Used by the crash tests (``tests/engine/test_cli_crash.py`` and the serve, notify and
process-tuning tests) and the crash-loop benchmark (``python -m bench crash_loop``): write the
config, start ``seamless run --print-events critical``, wait for its first printed event, read
what it printed (each line is printed only after its event is committed) and reduce a state to
the books (positions and cash) that a restart must restore.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

#: The ``seamless`` console script of the running interpreter's environment.
SEAMLESS = str(Path(sys.executable).parent / "seamless")


def env() -> dict[str, str]:
    """This process's environment without ``SEAMLESS_*`` overrides (a child reads only its
    config file), unbuffered so that a kill never leaves printed events in a buffer."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    clean["PYTHONUNBUFFERED"] = "1"
    return clean


def write_config(folder: Path, rate: float = 2000) -> Path:
    """``folder/crash.yaml``: a synthetic feed of ``rate`` ticks/s on AAPL and MSFT, two quick
    SMA crossovers that trade often, snapshots every second, no risk limits; the DuckDB log
    (``crash.duckdb``) and the broker's account (``broker.json``) in ``folder``."""
    config = {
        "storage": {"db_path": str(folder / "crash.duckdb"), "snapshot_interval_s": 1.0},
        "broker": {"account_path": str(folder / "broker.json")},
        "feed": {"kind": "synthetic", "symbols": ["AAPL", "MSFT"], "rate": rate, "seed": 11},
        "strategies": [
            {
                "name": "sma_aapl",
                "strategy": "sma_crossover",
                "symbols": ["AAPL"],
                "params": {"fast": 2, "slow": 5, "qty": 10},
            },
            {
                "name": "sma_msft",
                "strategy": "sma_crossover",
                "symbols": ["MSFT"],
                "params": {"fast": 3, "slow": 8, "qty": 4},
            },
        ],
        "risk": {
            "max_position": 0,
            "max_order_notional": 0,
            "max_orders_per_second": 0,
            "daily_loss_limit": 0,
        },
        "runner": {"heartbeat_interval_s": 0.2},
    }
    path = folder / "crash.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_engine(config: Path, out: Path, err: Path) -> subprocess.Popen[bytes]:
    """Start ``seamless run --print-events critical`` on ``config``; stdout to ``out``."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [SEAMLESS, "run", "--config", str(config), "--print-events", "critical"],
            cwd=config.parent,
            env=env(),
            stdout=stdout,
            stderr=stderr,
        )


def wait_for_output(proc: subprocess.Popen[bytes], out: Path, err: Path, timeout: float) -> None:
    """Wait until the engine printed something; fail (with its stderr) if it exits first or
    prints nothing within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.stat().st_size > 0:
            return
        assert proc.poll() is None, f"engine exited early: {err.read_text()}"
        time.sleep(0.05)
    raise AssertionError(f"engine printed nothing within {timeout} s: {err.read_text()}")


def printed_events(out: Path) -> list[dict[str, Any]]:
    """Complete JSON lines only: the kill may cut the last one."""
    text = out.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # whatever follows the last newline is incomplete
    return [json.loads(line) for line in lines if line]


def books(state: dict[str, Any]) -> dict[str, Any]:
    """The books of a state dict (``state_to_dict``): open positions and cash, rounded so that
    float noise never counts as a difference."""
    positions = {
        sym: round(pos["qty"], 9)
        for sym, pos in state["positions"].items()
        if abs(pos["qty"]) > 1e-9
    }
    return {"positions": positions, "cash": round(state["account"]["cash"], 6)}
