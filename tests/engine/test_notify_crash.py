"""Crash-safe notifications on the real CLI: ``seamless run`` trades a fast synthetic feed with
a webhook pointing at a local receiver (which refuses its first requests), is SIGKILLed at
random moments several times and restarted, and finally stopped cleanly. The receiver is slow
(10 ms a request), so kills find committed events not delivered yet. Every committed event the
webhook selects must have reached the receiver in the end (at least once: it deduplicates by
the ``Idempotency-Key``, which is the event's ``event_id``)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import yaml

from persistence import CLEAN, CRASHED, EventLog
from testkit.engine_process import SEAMLESS, env, write_config
from tests.engine.notify_receiver import Receiver
from tests.engine.test_notify import selected

KILLS = 4
TOPICS = ["fills.*", "risk", "commands", "system.runner:runner_status_changed", "system.errors"]


def start(config: Path, folder: Path, n: int) -> subprocess.Popen[bytes]:
    with (folder / f"out{n}.txt").open("wb") as out, (folder / f"err{n}.txt").open("wb") as err:
        return subprocess.Popen(
            [SEAMLESS, "run", "--config", str(config)],
            cwd=folder,
            env=env(),
            stdout=out,
            stderr=err,
        )


def test_sigkilled_engines_still_deliver_every_committed_selected_event(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    config_path = write_config(tmp_path, rate=1000)
    db = tmp_path / "crash.duckdb"
    with Receiver(fail_first=5, delay_s=0.01) as rx:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config["notify"] = {
            "webhooks": [{"url": rx.url + "/seamless", "topics": TOPICS}],
            "poll_interval_s": 0.05,
            "retry_initial_s": 0.05,
            "retry_max_s": 0.2,
            "stop_drain_s": 30.0,
        }
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

        delivered_before_kill: list[int] = []
        backlogs = []  # selected events committed but not delivered when a run was killed
        for n in range(KILLS):
            proc = start(config_path, tmp_path, n)
            try:
                deadline = time.monotonic() + 30
                # wait until this run has delivered something, then kill it mid-trading
                while len(rx.received()) <= (delivered_before_kill or [0])[-1]:
                    assert proc.poll() is None, (tmp_path / f"err{n}.txt").read_text()
                    assert time.monotonic() < deadline, "no delivery within 30 s"
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.3, 2.0))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            assert proc.returncode == -signal.SIGKILL
            delivered_before_kill.append(len(rx.received()))
            got = rx.unique_ids()
            backlogs.append(sum(e.event_id not in got for e in selected(db, tuple(TOPICS))))

        proc = start(config_path, tmp_path, KILLS)
        err = tmp_path / f"err{KILLS}.txt"
        try:  # a clean stop once it runs (a loaded machine may take seconds to start it)
            deadline = time.monotonic() + 60
            while "running on" not in err.read_text(encoding="utf-8", errors="replace"):
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.05)
            time.sleep(1.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, (tmp_path / f"err{KILLS}.txt").read_text()

        wanted = selected(db, tuple(TOPICS))
        received = rx.received()
    assert rx.refused == 5
    assert any(backlogs), f"no kill left anything undelivered: {backlogs}"
    got = rx.unique_ids()
    missing = [e for e in wanted if e.event_id not in got]
    assert not missing, f"{len(missing)} committed events never delivered, first {missing[0]}"
    assert sum(e.type == "trade_executed" for e in wanted) > 20, "too few fills to prove much"
    # every request carried its event and the event's id as the idempotency key
    assert all(r["headers"]["Idempotency-Key"] == r["body"]["event_id"] for r in received)
    by_id = {e.event_id: e for e in wanted}
    assert all(r["body"]["seq"] == by_id[r["body"]["event_id"]].seq for r in received)
    # duplicates are few: at most the deliveries since a cursor save, per kill
    assert len(received) - len(got) < 50 * KILLS
    with EventLog(db) as log:
        assert [r.how for r in log.runs()] == [CRASHED] * KILLS + [CLEAN]
