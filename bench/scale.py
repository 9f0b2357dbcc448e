"""Scale-out benchmark: PostgreSQL beside DuckDB, and the JetStream bridge (figures only).

Run: ``python -m bench scale [--critical 500] [--batch 50000] [--bridge 20000] [--json]``
(``--seconds 5 --rate 1000`` for the latency run).
Starts a private PostgreSQL and a private nats-server (as the tests do, installing them from
Debian when missing) in temp folders, then in the same run:

- **critical append** p50/p99 (one producer, ``wait=True``, fsync on) and critical appends/s
  with 8 producers (group commit), DuckDB beside PostgreSQL;
- **batched append**: non-critical events/s (DuckDB: Arrow insert; PostgreSQL: COPY);
- **bridge**: relay events/s from a committed backlog, end-to-end events/s while appending,
  and engine commit -> remote subscriber latency p50/p99 (from ``python -m bench scale_bridge``).

DuckDB is the baseline of PostgreSQL; the bridge has none in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bench_parser, report, scale_bridge
from persistence import EventLog
from persistence.pg import PostgresEventLog
from testkit.measure import percentile
from testkit.services.nats import NatsServer
from testkit.services.postgres import PostgresServer
from testkit.workload import numbered_fill, numbered_tick

#: The two event-log backends compared (both context managers).
Log = EventLog | PostgresEventLog


def critical_latency(log: Log, n: int) -> tuple[float, float]:
    """p50 and p99 in ms of one producer's critical appends, each waited for."""
    times: list[float] = []
    for i in range(n):
        start = time.perf_counter()
        log.append(numbered_fill(i), wait=True)
        times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 50), percentile(times, 99)


def critical_throughput(log: Log, producers: int, per_producer: int, base: int) -> float:
    """Critical appends/s with ``producers`` threads each waiting for every append."""

    def produce(k: int) -> None:
        for i in range(per_producer):
            log.append(numbered_fill(base + k * per_producer + i), wait=True)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return producers * per_producer / (time.perf_counter() - start)


def batched(log: Log, n: int) -> float:
    """Non-critical appends/s including the final flush (the commit)."""
    ticks = [numbered_tick(i) for i in range(n)]
    start = time.perf_counter()
    for tick in ticks:
        log.append(tick)
    log.flush()
    return n / (time.perf_counter() - start)


def measure(
    name: str, open_log: Callable[[str], Log], args: argparse.Namespace
) -> dict[str, float]:
    """One backend's critical latency, 8-producer throughput and batched rate."""
    with open_log("latency") as log:
        p50, p99 = critical_latency(log, args.critical)
    with open_log("throughput") as log:
        per_s = critical_throughput(log, 8, args.critical // 4, 10_000_000)
    with open_log("batch") as log:
        batch_s = batched(log, args.batch)
    print(
        f"{name:<10} critical p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  |  8 producers "
        f"{per_s:8,.0f}/s  |  batched {batch_s:9,.0f} ev/s",
        flush=True,
    )
    return {
        "critical_p50_ms": p50,
        "critical_p99_ms": p99,
        "critical_8_producers_per_s": per_s,
        "batched_per_s": batch_s,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("scale", __doc__)
    parser.add_argument("--critical", type=int, default=500, help="critical appends per test")
    parser.add_argument("--batch", type=int, default=50_000, help="non-critical events")
    parser.add_argument("--bridge", type=int, default=20_000, help="events through the bridge")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency run length")
    parser.add_argument("--rate", type=float, default=1_000.0, help="latency run events/s")
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both logs, then the bridge; the figures by backend."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="seamless-scale-") as tmp:
        folder = Path(tmp)
        print("event log backends (same run, fsync on both):")
        figures["duckdb"] = measure(
            "duckdb", lambda name: EventLog(folder / f"{name}.duckdb"), args
        )
        with PostgresServer() as server:

            def open_pg(name: str) -> Log:
                return PostgresEventLog(server.create_database(), stream=name)

            figures["postgres"] = measure("postgres", open_pg, args)
        print("JetStream bridge (DuckDB log -> nats-server -> durable consumer):")
        bridge = folder / "bridge"
        bridge.mkdir()
        with NatsServer() as nats:
            figures["bridge"] = {
                "backlog": scale_bridge.backlog(nats.url, bridge, args.bridge),
                "live": scale_bridge.live(nats.url, bridge, args.bridge),
                "latency": scale_bridge.latency(nats.url, bridge, args.seconds, args.rate),
            }
    return figures


if __name__ == "__main__":
    main()
