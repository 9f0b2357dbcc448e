"""The parent side of the tests that run a child Python process: start ``crash_child`` and
read its acknowledgements, check what a reopened log kept after the kill, and run a child (a
``-m`` module or ``-c`` code) to its end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streams.events import Event
from tests.persistence.builders import tick

ROOT = Path(__file__).resolve().parents[2]


def start_crash_child(target: str, tag: str) -> subprocess.Popen[str]:
    """Start ``tests.persistence.crash_child`` on ``target`` (a DuckDB path or a PostgreSQL
    DSN) and wait until it says it is ready to append."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.persistence.crash_child", target, tag],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("ready"), line + (child.stderr.read() if child.stderr else "")
    return child


def parse_acks(lines: Iterable[str]) -> dict[int, str]:
    """``seq -> event_id`` of every complete ``<seq> <event_id>`` line the child printed."""
    acked: dict[int, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():  # a partial last line is not an ack
            acked[int(parts[0])] = parts[1]
    return acked


def check_acknowledged_kept(log: Any, acked: dict[int, str], trial: int) -> Event:
    """After a kill, on the reopened ``log`` (a Recorder): every acknowledged ``seq ->
    event_id`` is stored, seq is gapless up to ``last_seq``, and the next append continues at
    max + 1. Returns that appended event."""
    rows = {e.seq: e.event_id for e in log.read()}
    missing = {s: e for s, e in acked.items() if rows.get(s) != e}
    assert not missing, f"trial {trial}: acknowledged but not stored: {missing}"
    assert sorted(rows) == list(range(1, len(rows) + 1)), f"trial {trial}: seq has gaps"
    assert log.last_seq == len(rows)
    nxt = log.append(tick(trial), wait=True)
    assert nxt is not None and nxt.seq == len(rows) + 1
    return nxt


def run_python(
    *args: str, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` from the repository root to its end, its output captured as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )
