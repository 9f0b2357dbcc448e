"""The parent side of the SIGKILL tests: start ``crash_child`` and read its acknowledgements."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

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
