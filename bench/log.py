"""Benchmarks of the DuckDB event log (figures only, no asserts).

Run: ``.venv/bin/python bench/log.py [--events N]``. Goals on a 2-core box: critical append
p99 < 5 ms, >= 5,000 critical appends/s with 16 producers, >= 200k batched non-critical
appends/s, restore of a 1M-event log from snapshot + tail < 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from persistence import EventLog, full_replay, restore
from state import model
from streams.events import CashAdjusted, TickReceived, TradeExecuted

T0 = 1_700_000_000_000_000_000


def _fill(i: int) -> TradeExecuted:
    return TradeExecuted(
        fill_id=f"f{i}",
        order_id=f"o{i}",
        strategy="bench",
        symbol="AAPL",
        side="buy" if i % 2 else "sell",
        qty=1.0,
        price=100.0 + i % 7,
        ts_event=T0 + i,
    )


def _ticks(n: int, start: int = 0) -> list[TickReceived]:
    return [
        TickReceived(
            symbol="AAPL" if i % 2 else "MSFT",
            bid=100.0 + (i % 100) * 0.01,
            ask=100.02 + (i % 100) * 0.01,
            size=1.0,
            ts_event=T0 + i * 1000,
        )
        for i in range(start, start + n)
    ]


def bench_latency(folder: Path, n: int = 2000) -> None:
    with EventLog(folder / "latency.duckdb") as log:
        for i in range(50):  # warm up
            log.append(_fill(-i - 1), wait=True)
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            log.append(_fill(i), wait=True)
            lat.append(time.perf_counter() - t0)
    lat.sort()
    print(
        f"critical append, 1 producer, wait=True: n={n} "
        f"p50={statistics.median(lat) * 1e3:.2f} ms  p99={lat[int(n * 0.99)] * 1e3:.2f} ms  "
        f"max={lat[-1] * 1e3:.2f} ms"
    )


def bench_producers(folder: Path, threads: int = 16, per_thread: int = 500) -> None:
    with EventLog(folder / "producers.duckdb") as log:
        start = threading.Barrier(threads + 1)

        def produce(k: int) -> None:
            start.wait()
            for i in range(per_thread):
                log.append(_fill(k * 1_000_000 + i), wait=True)

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


def bench_batched(folder: Path, n: int = 500_000) -> None:
    ticks = _ticks(n)
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


def bench_restore(folder: Path, n: int, tail: int = 10_000) -> None:
    path = folder / "restore.duckdb"
    t0 = time.perf_counter()
    with EventLog(path, batch_size=50_000) as log:
        log.append(CashAdjusted(amount=1e6, reason="deposit", ts_event=T0))
        chunk = 100_000
        for start in range(0, n - tail - 1, chunk):
            for e in _ticks(min(chunk, n - tail - 1 - start), start):
                log.append(e)
        seq = log.flush()
        print(f"built {seq:,} events in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        state = full_replay(log)
        full_s = time.perf_counter() - t0
        print(f"full replay of {seq:,} events (no snapshot): {full_s:.2f} s")

        log.save_snapshot(seq, model.SCHEMA_VERSION, model.state_to_dict(state))
        for i, e in enumerate(_ticks(tail, n)):
            log.append(e if i % 10 else _fill(i))
        log.flush()
    with EventLog(path) as log:
        t0 = time.perf_counter()
        result = restore(log)
        snap_s = time.perf_counter() - t0
        print(
            f"restore of {result.seq:,} events from snapshot at {result.snapshot_seq:,} "
            f"+ {result.replayed:,} tail events: {snap_s:.3f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the restore log")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_latency(folder)
        bench_producers(folder)
        bench_batched(folder)
        bench_restore(folder, args.events)


if __name__ == "__main__":
    main()
