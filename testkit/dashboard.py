"""Headless Chromium and a fast in-process engine, for the dashboard tests and the browser
and engine benchmarks (``ui_latency``, ``load``, ``page_cost``, ``commit_path``).

Chromium is Debian's ``chromium`` package, installed with ``apt-get`` when missing: a test that
needs it fails when it cannot be had, it never skips. The engine is the test config
(:func:`engine_config`: synthetic ticks, a quick SMA strategy, temp DuckDB and prefs); the
benches start it with :func:`start_kernel` and delete its files with :func:`remove_run_files`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
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


def launch_browser(pw: Any, idle: bool = False) -> Any:
    """Headless Debian Chromium; with ``idle`` every Chromium process runs under the
    ``SCHED_IDLE`` policy (``chrt --idle``, inherited by the renderers): the browsers then take
    only the CPU the server leaves, the nearest this one host gets to browsers on the users'
    own machines, while the pages still render here and are timed the same way. (A nice level
    does not do it: Chromium sets its processes' own nice values, renderers back to 0.)"""
    executable = chromium_path()
    if idle:
        wrapper = Path(tempfile.mkdtemp(prefix="seamless-chromium-")) / "chromium"
        wrapper.write_text(f'#!/bin/sh\nexec chrt --idle 0 {executable} "$@"\n')
        wrapper.chmod(0o755)
        try:
            return pw.chromium.launch(executable_path=str(wrapper), args=CHROMIUM_ARGS)
        finally:  # the shell exec'd Chromium: the script is no longer needed
            shutil.rmtree(wrapper.parent, ignore_errors=True)
    return pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


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


def start_kernel(
    prefix: str,
    rate: float | None = None,
    *,
    tuned: bool = True,
    quiet: bool = False,
    **dashboard: Any,
) -> tuple[Any, Any]:
    """The benches' engine: the test config (:func:`engine_config` in a new temp folder named
    ``prefix``..., ``dashboard`` overriding keys of its dashboard section), the synthetic feed at
    ``rate`` ticks/s (None: the config's), no strategy if ``quiet``, started with the
    dashboard's shared streams; ``tuned``: the interpreter settings of ``seamless serve``
    (:func:`engine.process_tuning.tune_process`). Returns (config, kernel)."""
    from engine.kernel import Kernel
    from engine.process_tuning import tune_process
    from panel_app.services import services_for

    config = engine_config(Path(tempfile.mkdtemp(prefix=prefix)), **dashboard)
    if rate is not None:
        config = dataclasses.replace(config, feed=dataclasses.replace(config.feed, rate=rate))
    if quiet:
        config = dataclasses.replace(config, strategies=())
    kernel = Kernel.from_config(config).start()
    services_for(kernel)
    if tuned:
        tune_process(config.engine)
    return config, kernel


def remove_run_files(config: Any) -> None:
    """Delete the temp folder a bench run's kernel wrote its DuckDB and broker files to
    (call after ``kernel.stop()``): a bench leaves nothing behind."""
    shutil.rmtree(Path(config.storage.db_path).parent, ignore_errors=True)
