"""SIGKILL a process that appends critical events with wait=True, at random moments, and
check after each kill: once the log reopens (putting back what only its journal had), every
acknowledged event is stored, seq is gapless, it continues at max+1, and restore equals full
replay."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from persistence import EventLog, full_replay, restore
from state import model
from tests.persistence.crash_parent import check_acknowledged_kept, parse_acks, start_crash_child

TRIALS = 20


def _kill_and_collect(child: subprocess.Popen[str], after_s: float) -> dict[int, str]:
    time.sleep(after_s)
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    return parse_acks(out.splitlines())


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    rng = random.Random(1234)
    all_acked: dict[int, str] = {}
    for trial in range(TRIALS):
        child = start_crash_child(str(path), f"t{trial}")
        acked = _kill_and_collect(child, rng.uniform(0.05, 0.6))
        assert child.returncode == -signal.SIGKILL
        all_acked.update(acked)

        with EventLog(path) as log:  # opening recovers: it puts back what only the journal has
            nxt = check_acknowledged_kept(log, all_acked, trial)
            result = restore(log)
            assert result.seq == nxt.seq
            assert result.state == full_replay(log)
            if trial % 5 == 4:
                log.save_snapshot(log.flush(), *_state_of(log))
    assert len(all_acked) > TRIALS


def _state_of(log: EventLog) -> tuple[int, dict[str, object]]:
    return model.SCHEMA_VERSION, model.state_to_dict(full_replay(log))
