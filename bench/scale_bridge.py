"""Benchmark of the JetStream bridge (figures only, no asserts).

Run: ``.venv/bin/python bench/scale_bridge.py [--events N]``. Starts a private nats-server
(as the tests do) and a DuckDB event log in a temp folder; the remote subscriber is a
separate process (as a dashboard on another host would be), timing with the host-wide
monotonic clock. Measures:

- **backlog**: events/s the relay publishes (acked by JetStream) from an already committed
  log, and events/s the remote durable consumer then receives them;
- **live**: events/s end to end while the engine appends ticks as fast as it can;
- **latency**: engine commit -> remote subscriber, p50/p99, at a steady rate (each event
  appended with ``wait=True``, so the clock starts when its commit is done).

``SEAMLESS_BENCH_DEBUG=1`` makes the subscriber process log its pull requests (to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.jetstream import OutboxRelay, RemoteEventSource
from persistence import EventLog
from streams.events import Event, TickReceived
from tests.services.nats import NatsServer

T0 = 1_700_000_000_000_000_000


def _tick(i: int) -> TickReceived:
    return TickReceived(
        symbol="AAPL" if i % 2 else "MSFT",
        bid=100.0 + (i % 100) * 0.01,
        ask=100.02 + (i % 100) * 0.01,
        size=1.0,
        ts_event=T0 + i * 1000,
    )


def consume(url: str, source: str, count: int, out: str) -> None:
    """The remote subscriber process: receive ``count`` events, write their arrival times."""
    at: dict[int, float] = {}
    if os.environ.get("SEAMLESS_BENCH_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)d %(message)s")

    def on_event(event: Event) -> None:
        at[event.seq] = time.monotonic()

    remote = RemoteEventSource(
        url, f"bench_{source}", filter_subject=f"seamless.{source}.>", on_event=on_event
    ).start()
    while not remote.stats()["connected"]:
        time.sleep(0.01)
    time.sleep(0.3)
    print("ready", flush=True)
    remote.wait_for_seq(source, count, 600)
    stats = remote.stats()
    remote.stop()
    print(json.dumps({k: v for k, v in stats.items() if k != "positions"}), file=sys.stderr)
    Path(out).write_text(json.dumps({str(k): v for k, v in at.items()}))


class _Remote:
    """A consumer child process for one source."""

    def __init__(self, url: str, source: str, count: int, folder: Path) -> None:
        self.out = folder / f"{source}.json"
        cmd = [sys.executable, __file__, "--consume", url, source, str(count), str(self.out)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit("remote consumer did not start")

    def arrivals(self) -> dict[int, float]:
        if self.proc.wait(600) != 0:
            raise SystemExit("remote consumer failed")
        return {int(k): v for k, v in json.loads(self.out.read_text()).items()}


def _relay(log: EventLog, url: str, source: str) -> OutboxRelay:
    relay = OutboxRelay(log, url, source=source).start()
    relay.wait_caught_up(30)  # connected, stream created
    return relay


def backlog(url: str, folder: Path, n: int) -> None:
    with EventLog(folder / "backlog.duckdb") as log:
        for i in range(n):
            log.append(_tick(i))
        log.flush()
        t = time.monotonic()
        relay = _relay(log, url, "backlog")
        relay.wait_caught_up(300)
        relay_s = time.monotonic() - t
        relay.stop()
    at = _Remote(url, "backlog", n, folder).arrivals()
    remote_s = max(at.values()) - min(at.values())
    print(f"backlog  relay {n / relay_s:>10,.0f} ev/s   remote consumer {n / remote_s:>9,.0f} ev/s")


def live(url: str, folder: Path, n: int) -> None:
    with EventLog(folder / "live.duckdb") as log:
        relay = _relay(log, url, "live")
        remote = _Remote(url, "live", n, folder)
        t = time.monotonic()
        for i in range(n):
            log.append(_tick(i))
        append_s = time.monotonic() - t
        log.flush()
        at = remote.arrivals()
        relay.stop()
    total_s = max(at.values()) - t
    print(
        f"live     engine appends {n / append_s:>10,.0f} ev/s   "
        f"end to end {n / total_s:>10,.0f} ev/s"
    )


def latency(url: str, folder: Path, seconds: float, rate: float) -> None:
    count = int(seconds * rate)
    with EventLog(folder / "latency.duckdb") as log:
        relay = _relay(log, url, "lat")
        remote = _Remote(url, "lat", count, folder)
        committed: dict[int, float] = {}
        start = time.monotonic()
        for i in range(count):
            event = log.append(_tick(i), wait=True)
            assert event is not None
            committed[event.seq] = time.monotonic()
            pause = start + (i + 1) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        at = remote.arrivals()
        relay.stop()
    lat = sorted((at[s] - t) * 1000 for s, t in committed.items())
    p50 = statistics.median(lat)
    p99 = lat[int(len(lat) * 0.99) - 1]
    print(f"latency  commit -> remote at {rate:,.0f} ev/s: p50 {p50:.2f} ms  p99 {p99:.2f} ms")


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--consume":
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1_000.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NatsServer() as server:
        folder = Path(tmp)
        backlog(server.url, folder, args.events)
        live(server.url, folder, args.events)
        latency(server.url, folder, args.seconds, args.rate)


if __name__ == "__main__":
    main()
