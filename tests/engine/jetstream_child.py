"""Child process for the relay crash test: an "engine" that logs events and relays them.

``python -m tests.engine.jetstream_child <db path> <nats url> <source>`` appends events to a
DuckDB event log (committing every 50) for up to 20 seconds while an OutboxRelay copies them
to JetStream; the test SIGKILLs it mid-way.
"""

from __future__ import annotations

import sys
import time

from engine.jetstream import OutboxRelay
from persistence import EventLog
from tests.factories import fill, tick


def main() -> None:
    path, url, source = sys.argv[1:4]
    log = EventLog(path).open()
    relay = OutboxRelay(log, url, source=source, batch_size=50).start()
    deadline = time.monotonic() + 20.0
    n = 0
    while time.monotonic() < deadline:
        for _ in range(50):
            n += 1
            log.append(fill(price=100.0 + n) if n % 10 == 0 else tick(last=100.0 + n))
        log.flush()
        print(f"committed {log.committed_seq} relayed {relay.last_relayed_seq}", flush=True)
        time.sleep(0.005)
    relay.stop()
    log.close()


if __name__ == "__main__":
    main()
