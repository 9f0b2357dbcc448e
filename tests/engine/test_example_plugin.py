"""examples/plugin, pip-installed into a temporary folder (``pip install --target``) and put on
a real ``seamless`` process's path: its strategy, feed and notifier are listed, run from a
config, and the package type-checks against the public API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed by pip (built from a copy: the source tree stays clean)."""
    work = tmp_path_factory.mktemp("example")
    source = work / "plugin"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build"))
    target = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            target,
            source,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def seamless(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [str(BIN / "seamless"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_installed_example_is_listed_and_loads(tmp_path: Path, site: Path) -> None:
    result = seamless("plugins", "--json", cwd=tmp_path, site=site)

    assert result.returncode == 0, result.stderr
    rows = {
        (r["group"], r["name"]): r
        for r in json.loads(result.stdout)
        if r["distribution"] == "seamless-example-plugin"
    }
    assert set(rows) == {
        ("seamless.strategies", "hold_once"),
        ("seamless.feeds", "steps"),
        ("seamless.notifiers", "jsonl_file"),
        ("seamless.panels", "positions"),
    }
    assert all(r["loads"] and r["version"] == "0.1.0" for r in rows.values())


def test_the_example_strategy_feed_and_notifier_run_in_seamless_run(
    tmp_path: Path, site: Path
) -> None:
    sent = tmp_path / "audit.jsonl"
    config = {
        "storage": {"db_path": str(tmp_path / "run.duckdb")},
        "feed": {
            "kind": "steps",
            "symbols": ["AAPL"],
            "loop": False,
            "speed": 0,
            "options": {"closes": [10, 11, 12, 13, 12, 11]},
        },
        "strategies": [
            {"name": "holder", "strategy": "hold_once", "symbols": ["AAPL"], "params": {"qty": 3}}
        ],
        "notify": {
            "channels": [{"kind": "jsonl_file", "name": "audit", "options": {"path": str(sent)}}]
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config))

    run = seamless("run", "--config", str(path), cwd=tmp_path, site=site)
    backtest = seamless("backtest", "--config", str(path), "--json", cwd=tmp_path, site=site)

    assert run.returncode == 0, run.stderr
    assert "replay mode" in run.stderr
    lines = [json.loads(line) for line in sent.read_text().splitlines()]
    fills = [line for line in lines if line["type"] == "trade_executed"]
    assert len(fills) == 1 and " fill: BUY 3 AAPL" in fills[0]["text"]
    assert backtest.returncode == 0, backtest.stderr
    summary = json.loads(backtest.stdout)
    assert (summary["bars"], summary["fills"]) == (6, 1)


def test_the_example_type_checks_against_the_public_api() -> None:
    result = subprocess.run(
        [str(BIN / "mypy"), "--disallow-untyped-defs", str(EXAMPLE / "seamless_example_plugin")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout


def test_the_example_tab_shows_in_a_dashboard_session(tmp_path: Path, site: Path) -> None:
    from engine import plugins
    from engine.kernel import Kernel
    from panel_app.app import DashboardSession
    from panel_app.services import release_services
    from testkit.dashboard import engine_config

    sys.path.insert(0, str(site))
    plugins.clear_cache()
    try:
        kernel = Kernel.from_config(engine_config(tmp_path, panels=["positions"])).start()
        try:
            session = DashboardSession(kernel, "erin", "viewer")
            try:
                tab = session.tabs.objects[session.tab_names.index("positions")]
                assert "## Positions" in str(tab.objects[0].object)
                positions = tab.objects[2].object  # the engine trades meanwhile: AAPL or none
                assert isinstance(positions, dict) and set(positions) <= {"AAPL"}
            finally:
                session.dispose()
        finally:
            release_services(kernel)
            kernel.stop()
    finally:
        sys.path.remove(str(site))
        plugins.clear_cache()
