"""Child process for the write-failure test: real I/O errors from RLIMIT_FSIZE.

Appends critical events with wait=True until the file-size limit makes the commit fail,
checks the failure is reported (PersistenceError, unhealthy, last_error), lifts the limit,
and checks the writer recovers and nothing acknowledged is lost. Prints one JSON line.

Usage: python -m tests.persistence.disk_full_child PATH
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

from persistence import EventLog
from streams.errors import PersistenceError
from tests.persistence.builders import fill


def main() -> None:
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write then fails with EFBIG
    report: dict[str, object] = {}
    log = EventLog(path).open()
    log.append(fill(0, event_id="e0"), wait=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path), resource.RLIM_INFINITY))
    acked = [1]
    try:
        for i in range(1, 100_000):
            stored = log.append(fill(i, event_id=f"e{i}"), wait=True)
            assert stored is not None
            acked.append(stored.seq)
    except PersistenceError as exc:
        report["error"] = str(exc)
    report["healthy_while_failing"] = log.healthy
    report["last_error"] = log.last_error
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    deadline = time.monotonic() + 20
    while not log.healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    report["recovered"] = log.healthy
    after = log.append(fill(10**6, event_id="e1000000"), wait=True)
    report["after_seq"] = after.seq if after else None
    log.close()
    with EventLog(path) as again:
        seqs = [e.seq for e in again.read()]
    report["acked_last"] = acked[-1]
    report["stored"] = seqs
    print(json.dumps(report))


if __name__ == "__main__":
    main()
