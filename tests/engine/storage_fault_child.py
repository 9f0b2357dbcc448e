"""Child process for the storage-fault test: the engine holds trading while writes fail.

Publishes fills through the real core (EventLog + StateStore + threaded bus) while a file-size
limit makes DuckDB's writes fail, checks that nothing is delivered while the fault lasts, lifts
the limit, and checks everything is delivered once and the state equals a replay of the log.
Prints one JSON line. Usage: python -m tests.engine.storage_fault_child PATH
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time

from engine.core import build_core
from persistence import EventLog, full_replay
from streams.clock import ManualClock
from streams.events import Event, TradeExecuted
from testkit.workload import numbered_fill


def _fill(i: int) -> TradeExecuted:
    side = "buy" if i % 2 == 0 else "sell"
    return numbered_fill(i, strategy="s", side=side, event_id=f"fill-{i}", ts_event=i + 1)


def main() -> None:
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    report: dict[str, object] = {}
    log = EventLog(path).open()
    core = build_core(journal=log, clock=ManualClock(1), threaded=True, starting_cash=1e6)
    delivered: list[str] = []
    errors: list[Event] = []
    core.bus.subscribe("fills.*", lambda e: delivered.append(e.event_id))
    core.bus.subscribe("system.errors", errors.append)
    core.publish(_fill(0))
    core.bus.join(10)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path), resource.RLIM_INFINITY))
    published = [1]

    def produce() -> None:
        """Publish until the fault has held 100 more fills back."""
        i, after_fault = 1, 0
        while i < 20_000 and after_fault < 100:  # the fault comes after ~1,100 events
            core.publish(_fill(i))
            i += 1
            published[0] = i
            if core.store.storage_fault is not None:
                after_fault += 1

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    deadline = time.monotonic() + 60
    while core.store.storage_fault is None and time.monotonic() < deadline:
        time.sleep(0.01)
    report["fault_seen"] = core.store.storage_fault is not None
    report["healthy_during_fault"] = log.healthy
    held = len(delivered)
    time.sleep(0.5)
    report["delivered_during_fault"] = len(delivered) - held
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    producer.join(60)
    report["drained"] = core.bus.join(60)
    report["fault_cleared"] = core.store.storage_fault is None
    core.stop()
    live = core.store.get_state()
    report["published"] = published[0]
    report["delivered"] = len(delivered)
    report["delivered_unique"] = len(set(delivered))
    report["error_reported"] = any(getattr(e, "component", "") == "state:storage" for e in errors)
    stored = [e.event_id for e in log.read(topic="fills.*")]
    report["log_matches_delivery"] = stored == delivered
    report["state_equals_replay"] = full_replay(log) == live
    seqs = [e.seq for e in log.read()]
    report["gapless"] = seqs == list(range(1, len(seqs) + 1))
    log.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
