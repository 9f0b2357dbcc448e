"""The availability bench's restart loop, short: a real ``seamless run`` under a systemd-like
supervisor (notify socket, watchdog), one SIGKILL and one SIGSTOP hang, no acknowledged event
lost, ready again after each, STOPPING=1 on the final SIGTERM (``python -m bench availability``
runs 50+; run here as users run it, since the tests never import ``bench``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_killed_and_a_hung_engine_are_restarted_and_lose_nothing() -> None:
    options = ["--faults", "2", "--hang-share", "0.5", "--min-s", "0.3", "--max-s", "0.6"]
    result = subprocess.run(
        [sys.executable, "-m", "bench", "availability", *options, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    figures = json.loads(result.stdout)
    assert result.returncode == 0, (figures, result.stderr[-3000:])
    assert figures["faults"] == 2
    assert figures["after_kill_s"]["n"] == 1 and figures["after_hang_s"]["n"] == 1
    # a hang is only seen once the watchdog interval (1 s) passed without WATCHDOG=1
    assert figures["after_hang_s"]["max"] > 1.0
    assert figures["events_acknowledged"] > 0
    assert figures["acknowledged_events_lost"] == 0
    assert figures["watchdog_false_kills"] == 0
    assert figures["stopping_sent_on_sigterm"] is True
    assert figures["failures"] == 0
