"""Soak: push >= 1,000,000 ticks through the live engine and watch memory, fds and threads.

Run: ``python -m bench soak [--ticks 1000000] [--sample 100000] [--warmup 200000]
[--memory-limit 256MB] [--json]`` (``--memory-limit ''`` = DuckDB's default, 80 % of RAM).

A real ``Kernel`` (DuckDB event log, threaded bus, store, broker, risk, portfolio, P&L, one SMA
strategy trading AAPL, heartbeats, snapshots every ``--snapshot-s``) gets ticks published from
a producer thread into ``kernel.bus`` as fast as the engine takes them (the producer backs off
while the inbox holds more than ``--max-depth``; a full inbox would hold it anyway: every tick
is dispatched, logged and folded). Every ``--sample`` ticks it records resident memory (VmRSS from
/proc/self/status), open file descriptors (/proc/self/fd) and threads. It reports the growth
after warm-up (per 100k ticks) and, after a clean stop, checks that the log holds every event
with gapless seqs and that restore (snapshot + tail) equals a full replay.
Exit status 1 if a consistency check fails; the memory figures are reported, not judged.
No baseline in the same run: growth is read against the warm-up sample.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, cast

from bench import bench_parser, report
from engine.config import parse_config
from engine.kernel import Kernel
from persistence import EventLog, full_replay, restore
from streams.events import TickReceived
from testkit.measure import rss_kib


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def duckdb_mib(kernel: Kernel | None, tag: str | None = None) -> float | None:
    """DuckDB's own buffer-manager memory (part of RSS), all of it or one ``duckdb_memory()``
    tag (``ART_INDEX``: indexes, which DuckDB cannot evict; the rest is capped by its
    memory_limit)."""
    if kernel is None or not kernel.log.is_open:
        return None
    sql = "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"
    with cast(EventLog, kernel.log)._reader() as cur:
        rows = cur.execute(sql + " WHERE tag = ?", [tag]) if tag else cur.execute(sql)
        total = rows.fetchall()[0][0]
    return round((total or 0) / 2**20, 1)


def sample(ticks: int, started: float, kernel: Kernel | None = None) -> dict[str, Any]:
    return {
        "ticks": ticks,
        "s": round(time.monotonic() - started, 1),
        "rss_mib": round(rss_kib() / 1024, 1),
        "duckdb_mib": duckdb_mib(kernel),
        "art_index_mib": duckdb_mib(kernel, "ART_INDEX"),
        "py_objects": len(gc.get_objects()),
        "fds": open_fds(),
        "threads": threading.active_count(),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures; exit status 1 if a consistency check failed."""
    parser = bench_parser(
        "soak",
        __doc__,
        ticks=1_000_000,
        sample=100_000,
        warmup=200_000,
        snapshot_s=5.0,
        max_depth=20_000,
    )
    parser.add_argument("--keep", help="put the DuckDB file in this folder (kept)")
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="storage.memory_limit (default: the config default; '' = DuckDB's own default)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace Python allocations and print the top growth from warm-up to the end (slow)",
    )
    summary = report(parser.parse_args(argv), run)
    return 0 if summary["consistent"] else 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Soak the engine as ``args`` says; print the summary and return it."""

    with tempfile.TemporaryDirectory(prefix="seamless-soak-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "soak.duckdb"
        storage: dict[str, Any] = {"db_path": str(db), "snapshot_interval_s": args.snapshot_s}
        if args.memory_limit is not None:
            storage["memory_limit"] = args.memory_limit
        if args.tracemalloc:
            tracemalloc.start(8)
        traced: tracemalloc.Snapshot | None = None
        config = parse_config(
            {
                "storage": storage,
                "feed": {"kind": "none", "symbols": ["AAPL", "MSFT"]},
                "broker": {"account_path": str(folder / "broker.json")},
                "runner": {"autostart": True, "heartbeat_interval_s": 0.5},
                "strategies": [
                    {
                        "name": "sma_aapl",
                        "strategy": "sma_crossover",
                        "symbols": ["AAPL"],
                        "params": {"fast": 20, "slow": 200, "qty": 1},
                    }
                ],
                "risk": {"max_orders_per_second": 0, "daily_loss_limit": 0},
            },
            env={},
        )
        kernel = Kernel.from_config(config).start()
        with cast(EventLog, kernel.log)._reader() as cur:
            limit = cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        inbox = kernel.bus._inbox
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        samples.append(sample(0, started, kernel))
        t0 = time.time_ns()
        symbols = ("AAPL", "MSFT")
        waits = 0
        for i in range(1, args.ticks + 1):
            if len(inbox) > args.max_depth:
                waits += 1
                while len(inbox) > args.max_depth // 2:
                    time.sleep(0.001)
            price = 100.0 + (i % 997) * 0.01 + (i // 50_000) * 0.1
            kernel.bus.publish(
                TickReceived(
                    symbol=symbols[i & 1],
                    bid=price,
                    ask=price + 0.02,
                    size=1.0,
                    ts_event=t0 + i * 1_000,
                    source="soak",
                )
            )
            if i % args.sample == 0:
                kernel.bus.join(60)
                gc.collect()
                samples.append(sample(i, started, kernel))
                print(json.dumps(samples[-1]), flush=True)
                if args.tracemalloc and traced is None and i >= args.warmup:
                    traced = tracemalloc.take_snapshot()
        growth: list[str] = []
        if traced is not None:
            stats_diff = tracemalloc.take_snapshot().compare_to(traced, "lineno")
            growth = [str(d) for d in stats_diff[:15]]
        kernel.bus.join(60)
        elapsed = time.monotonic() - started
        stats = dict(kernel.bus.stats.__dict__)
        held_back = inbox.blocked_puts
        assert kernel.snapshotter is not None  # a live kernel on a DuckDB log snapshots
        snapshots_taken = kernel.snapshotter.count
        health = kernel.health()
        kernel.stop()
        after_stop = sample(args.ticks, started)

        check_started = time.monotonic()
        with EventLog(db) as log:
            count = log.count()
            ticks_logged = log.count(types=["tick"])
            last_seq = log.last_seq
            fills = log.count(types=["trade_executed"])
            with log._reader() as cur:
                n_snapshots = cur.execute("SELECT count(*) FROM snapshots").fetchall()[0][0]
            result = restore(log)
            restore_s = time.monotonic() - check_started
            same = result.state == full_replay(log)
        check_s = time.monotonic() - check_started

    warm = next((s for s in samples if s["ticks"] >= args.warmup), samples[0])
    last = samples[-1]
    per_100k = (
        (last["rss_mib"] - warm["rss_mib"]) / ((last["ticks"] - warm["ticks"]) / 100_000)
        if last["ticks"] > warm["ticks"]
        else 0.0
    )
    ok = count == last_seq and ticks_logged == args.ticks and same
    summary = {
        "ticks": args.ticks,
        "elapsed_s": round(elapsed, 1),
        "ticks_per_s": round(args.ticks / elapsed),
        "duckdb_memory_limit": limit,
        "producer_backoffs": waits,
        "publisher_held_back": held_back,
        "bus": {k: v for k, v in stats.items() if k != "subscriber_errors"},
        "subscriber_errors": sum(stats["subscriber_errors"].values()),
        "rss_mib": {
            "start": samples[0]["rss_mib"],
            "warm": warm["rss_mib"],
            "end": last["rss_mib"],
        },
        "rss_growth_mib_per_100k_after_warmup": round(per_100k, 2),
        "duckdb_mib": {"warm": warm["duckdb_mib"], "end": last["duckdb_mib"]},
        "art_index_mib": {"warm": warm["art_index_mib"], "end": last["art_index_mib"]},
        "py_objects": {"warm": warm["py_objects"], "end": last["py_objects"]},
        "tracemalloc_top_growth_after_warmup": growth or None,
        "fds": {
            "start": samples[0]["fds"],
            "warm": warm["fds"],
            "end": last["fds"],
            "after_stop": after_stop["fds"],
        },
        "threads": {
            "start": samples[0]["threads"],
            "warm": warm["threads"],
            "end": last["threads"],
            "after_stop": after_stop["threads"],
        },
        "log": {
            "events": count,
            "last_seq": last_seq,
            "ticks": ticks_logged,
            "fills": fills,
            "snapshots": n_snapshots,
            "snapshots_taken_live": snapshots_taken,
        },
        "restore": {
            "snapshot_seq": result.snapshot_seq,
            "replayed": result.replayed,
            "restore_s": round(restore_s, 2),
            "equals_full_replay": same,
            "check_s": round(check_s, 1),
        },
        "event_log_healthy": health["event_log"]["healthy"],
        "consistent": ok,
    }
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    sys.exit(main())
