"""Benchmarks of the DuckDB event log (figures only, no asserts).

Run: ``python -m bench log [--events N] [--json]``. Goals on a 2-core box: critical append
p99 < 5 ms, >= 5,000 critical appends/s with 16 producers, >= 200k batched non-critical
appends/s, restore of a 1M-event log from snapshot + tail < 1 s.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import bench_parser, report
from persistence import EventLog, full_replay, restore
from state import model
from streams.events import CashAdjusted
from testkit.measure import percentile
from testkit.workload import T0, numbered_fill, numbered_tick


def bench_latency(folder: Path, n: int = 2000) -> dict[str, float]:
    """Critical appends of one producer, each waited for: p50, p99 and max in ms."""
    with EventLog(folder / "latency.duckdb") as log:
        for i in range(50):  # warm up
            log.append(numbered_fill(-i - 1), wait=True)
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            log.append(numbered_fill(i), wait=True)
            lat.append(time.perf_counter() - t0)
    figures = {
        "n": n,
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
        "max_ms": max(lat) * 1e3,
    }
    print(
        f"critical append, 1 producer, wait=True: n={n} "
        f"p50={figures['p50_ms']:.2f} ms  p99={figures['p99_ms']:.2f} ms  "
        f"max={figures['max_ms']:.2f} ms"
    )
    return figures


def bench_producers(folder: Path, threads: int = 16, per_thread: int = 500) -> dict[str, float]:
    """Critical appends of ``threads`` producers at once: events per second."""
    with EventLog(folder / "producers.duckdb") as log:
        start = threading.Barrier(threads + 1)

        def produce(k: int) -> None:
            start.wait()
            for i in range(per_thread):
                log.append(numbered_fill(k * 1_000_000 + i), wait=True)

        pool = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - t0
    total = threads * per_thread
    print(
        f"critical append, {threads} producers, wait=True: {total} events in {elapsed:.2f} s "
        f"= {total / elapsed:,.0f}/s"
    )
    return {"threads": threads, "events": total, "per_s": total / elapsed}


def bench_batched(folder: Path, n: int = 500_000) -> dict[str, float]:
    """Non-critical (batched) appends: append calls and committed events per second."""
    ticks = [numbered_tick(i) for i in range(n)]
    with EventLog(folder / "batched.duckdb", batch_size=20_000) as log:
        t0 = time.perf_counter()
        for e in ticks:
            log.append(e)
        t1 = time.perf_counter()
        log.flush()
        t2 = time.perf_counter()
    print(
        f"non-critical append, batched: {n} events, append calls {n / (t1 - t0):,.0f}/s, "
        f"appended + committed {n / (t2 - t0):,.0f}/s"
    )
    return {"events": n, "append_calls_per_s": n / (t1 - t0), "committed_per_s": n / (t2 - t0)}


def bench_restore(folder: Path, n: int, tail: int = 10_000) -> dict[str, float]:
    """A log of ``n`` events: full replay, then restore from a snapshot + ``tail`` events."""
    path = folder / "restore.duckdb"
    t0 = time.perf_counter()
    with EventLog(path, batch_size=50_000) as log:
        log.append(CashAdjusted(amount=1e6, reason="deposit", ts_event=T0))
        chunk = 100_000
        for start in range(0, n - tail - 1, chunk):
            for e in map(numbered_tick, range(start, min(start + chunk, n - tail - 1))):
                log.append(e)
        seq = log.flush()
        print(f"built {seq:,} events in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        state = full_replay(log)
        full_s = time.perf_counter() - t0
        print(f"full replay of {seq:,} events (no snapshot): {full_s:.2f} s")

        log.save_snapshot(seq, model.SCHEMA_VERSION, model.state_to_dict(state))
        for i, e in enumerate(map(numbered_tick, range(n, n + tail))):
            log.append(e if i % 10 else numbered_fill(i))
        log.flush()
    with EventLog(path) as log:
        t0 = time.perf_counter()
        result = restore(log)
        snap_s = time.perf_counter() - t0
        print(
            f"restore of {result.seq:,} events from snapshot at {result.snapshot_seq:,} "
            f"+ {result.replayed:,} tail events: {snap_s:.3f} s"
        )
    return {
        "events": result.seq,
        "full_replay_s": full_s,
        "snapshot_seq": result.snapshot_seq,
        "tail_events": result.replayed,
        "restore_s": snap_s,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("log", __doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the restore log")
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement in turn, in a temporary folder; the figures by measurement."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        return {
            "critical_latency": bench_latency(folder),
            "critical_producers": bench_producers(folder),
            "batched": bench_batched(folder),
            "restore": bench_restore(folder, args.events),
        }


if __name__ == "__main__":
    main()
