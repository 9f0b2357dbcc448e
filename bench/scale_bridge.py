"""Benchmark of the JetStream bridge (figures only, no asserts).

Run: ``python -m bench scale_bridge [--events N] [--json]``. Starts a private nats-server
(as the tests do) and a DuckDB event log in a temp folder; the remote subscriber is a
separate process (as a dashboard on another host would be), timing with the host-wide
monotonic clock. Measures:

- **backlog**: events/s the relay publishes (acked by JetStream) from an already committed
  log, and events/s the remote durable consumer then receives them;
- **live**: events/s end to end while the engine appends ticks as fast as it can;
- **latency**: engine commit -> remote subscriber, p50/p99, at a steady rate (each event
  appended with ``wait=True``, so the clock starts when its commit is done).

No baseline in the same run (``python -m bench scale`` puts the bridge beside the two logs).
``SEAMLESS_BENCH_DEBUG=1`` makes the subscriber process log its pull requests (to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import bench_parser, report
from engine.jetstream import OutboxRelay, RemoteEventSource
from persistence import EventLog
from streams.events import Event
from testkit.measure import percentile
from testkit.services.nats import NatsServer
from testkit.workload import numbered_tick

ROOT = Path(__file__).resolve().parents[1]


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
        cmd = [sys.executable, "-m", "bench.scale_bridge", "--consume", url, source, str(count)]
        self.proc = subprocess.Popen([*cmd, str(self.out)], stdout=subprocess.PIPE, cwd=ROOT)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit("remote consumer did not start")

    def arrivals(self) -> dict[int, float]:
        """When each seq arrived (host monotonic clock), once the child received them all."""
        if self.proc.wait(600) != 0:
            raise SystemExit("remote consumer failed")
        return {int(k): v for k, v in json.loads(self.out.read_text()).items()}


def _relay(log: EventLog, url: str, source: str) -> OutboxRelay:
    relay = OutboxRelay(log, url, source=source).start()
    relay.wait_caught_up(30)  # connected, stream created
    return relay


def backlog(url: str, folder: Path, n: int) -> dict[str, float]:
    """Relay and remote-consumer events/s from a committed backlog of ``n`` events."""
    with EventLog(folder / "backlog.duckdb") as log:
        for i in range(n):
            log.append(numbered_tick(i))
        log.flush()
        t = time.monotonic()
        relay = _relay(log, url, "backlog")
        relay.wait_caught_up(300)
        relay_s = time.monotonic() - t
        relay.stop()
    at = _Remote(url, "backlog", n, folder).arrivals()
    remote_s = max(at.values()) - min(at.values())
    print(f"backlog  relay {n / relay_s:>10,.0f} ev/s   remote consumer {n / remote_s:>9,.0f} ev/s")
    return {"events": n, "relay_per_s": n / relay_s, "remote_per_s": n / remote_s}


def live(url: str, folder: Path, n: int) -> dict[str, float]:
    """Engine appends/s and end-to-end events/s while the engine appends ``n`` ticks."""
    with EventLog(folder / "live.duckdb") as log:
        relay = _relay(log, url, "live")
        remote = _Remote(url, "live", n, folder)
        t = time.monotonic()
        for i in range(n):
            log.append(numbered_tick(i))
        append_s = time.monotonic() - t
        log.flush()
        at = remote.arrivals()
        relay.stop()
    total_s = max(at.values()) - t
    print(
        f"live     engine appends {n / append_s:>10,.0f} ev/s   "
        f"end to end {n / total_s:>10,.0f} ev/s"
    )
    return {"events": n, "append_per_s": n / append_s, "end_to_end_per_s": n / total_s}


def latency(url: str, folder: Path, seconds: float, rate: float) -> dict[str, float]:
    """Commit -> remote subscriber p50/p99 (ms) at a steady ``rate`` for ``seconds``."""
    count = int(seconds * rate)
    with EventLog(folder / "latency.duckdb") as log:
        relay = _relay(log, url, "lat")
        remote = _Remote(url, "lat", count, folder)
        committed: dict[int, float] = {}
        start = time.monotonic()
        for i in range(count):
            event = log.append(numbered_tick(i), wait=True)
            assert event is not None
            committed[event.seq] = time.monotonic()
            pause = start + (i + 1) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        at = remote.arrivals()
        relay.stop()
    lat = [(at[s] - t) * 1000 for s, t in committed.items()]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print(f"latency  commit -> remote at {rate:,.0f} ev/s: p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    return {"rate": rate, "events": count, "p50_ms": p50, "p99_ms": p99}


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail); ``--consume ...`` is the remote subscriber child."""
    given = sys.argv[1:] if argv is None else argv
    if len(given) == 5 and given[0] == "--consume":
        consume(given[1], given[2], int(given[3]), given[4])
        return
    parser = bench_parser("scale_bridge", __doc__, events=50_000, seconds=5.0, rate=1_000.0)
    report(parser.parse_args(given), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Backlog, live and latency runs against a private nats-server; the figures."""
    with tempfile.TemporaryDirectory() as tmp, NatsServer() as server:
        folder = Path(tmp)
        return {
            "backlog": backlog(server.url, folder, args.events),
            "live": live(server.url, folder, args.events),
            "latency": latency(server.url, folder, args.seconds, args.rate),
        }


if __name__ == "__main__":
    main()
