"""SIGKILL a process that appends critical events with wait=True, at random moments, and
check after each kill: every acknowledged event is stored, seq is gapless, the log reopens
and continues at max+1, and restore equals full replay."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from persistence import EventLog, full_replay, restore
from state import model
from tests.persistence.builders import tick

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 20


def _start(path: Path, tag: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.persistence.crash_child", str(path), tag],
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


def _kill_and_collect(child: subprocess.Popen[str], after_s: float) -> dict[int, str]:
    time.sleep(after_s)
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    acked: dict[int, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():  # a partial last line is not an ack
            acked[int(parts[0])] = parts[1]
    return acked


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    rng = random.Random(1234)
    all_acked: dict[int, str] = {}
    for trial in range(TRIALS):
        child = _start(path, f"t{trial}")
        acked = _kill_and_collect(child, rng.uniform(0.05, 0.6))
        assert child.returncode == -signal.SIGKILL
        all_acked.update(acked)

        con = duckdb.connect(str(path), read_only=True)
        rows = dict(con.execute("SELECT seq, event_id FROM events").fetchall())
        con.close()
        missing = {s: e for s, e in all_acked.items() if rows.get(s) != e}
        assert not missing, f"trial {trial}: acknowledged but not stored: {missing}"
        assert sorted(rows) == list(range(1, len(rows) + 1)), f"trial {trial}: seq has gaps"

        with EventLog(path) as log:
            assert log.last_seq == len(rows)
            nxt = log.append(tick(trial), wait=True)
            assert nxt is not None and nxt.seq == len(rows) + 1
            result = restore(log)
            assert result.seq == nxt.seq
            assert result.state == full_replay(log)
            if trial % 5 == 4:
                log.save_snapshot(log.flush(), *_state_of(log))
    assert len(all_acked) > TRIALS


def _state_of(log: EventLog) -> tuple[int, dict[str, object]]:
    return model.SCHEMA_VERSION, model.state_to_dict(full_replay(log))
