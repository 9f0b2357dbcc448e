"""Trading does not go on without durability: a storage fault holds the engine, nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_engine_holds_while_the_log_cannot_write_and_resumes_losing_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.engine.storage_fault_child", str(tmp_path / "e.duckdb")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["fault_seen"] is True
    assert report["healthy_during_fault"] is False
    assert report["delivered_during_fault"] == 0  # nothing visible that is not durable
    assert report["drained"] is True and report["fault_cleared"] is True
    assert report["delivered"] == report["published"] == report["delivered_unique"]
    assert report["log_matches_delivery"] is True
    assert report["state_equals_replay"] is True
    assert report["gapless"] is True
    assert report["error_reported"] is True
