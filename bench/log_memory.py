"""Event-log memory: what DuckDB holds as the log grows, and where a memory_limit bites.

Run: ``python -m bench log_memory [--events 5000000] [--every 500000]
[--memory-limit 256MB] [--json]`` (``--memory-limit ''`` = DuckDB's default, 80 % of RAM).

Appends tick events to an ``EventLog`` in a temporary file as fast as it takes them, and every
``--every`` events flushes, prints RSS and ``duckdb_memory()`` by tag (``ART_INDEX`` is the
UNIQUE/PRIMARY KEY indexes, which DuckDB cannot evict), then runs a ``CHECKPOINT``. Stops at the
first write failure (e.g. DuckDB's "Out of Memory" once the indexes outgrow the limit) and
prints how many events were committed by then. Exit status 1 on such a failure. No baseline in
the same run: the figures are sizes, read against the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import bench_parser, plain, report
from persistence import EventLog
from streams.errors import PersistenceError
from streams.events import TickReceived
from testkit.measure import rss_kib


def main(argv: list[str] | None = None) -> int:
    """Print the figures; exit status 1 if a write failed."""
    parser = bench_parser("log_memory", __doc__, events=5_000_000, every=500_000)
    parser.add_argument("--memory-limit", default="256MB")
    report(parser.parse_args(argv), run)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Grow the log, sampling memory every ``--every`` events; the samples. On a write failure
    it prints (with ``--json``: the figures so far) and leaves the process with status 1."""
    figures: dict[str, Any] = {"samples": []}
    with tempfile.TemporaryDirectory(prefix="seamless-logmem-") as tmp:
        log = EventLog(Path(tmp) / "log.duckdb", memory_limit=args.memory_limit).open()
        with log._reader() as cur:
            limit = cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        print(json.dumps({"memory_limit": limit}), flush=True)
        figures["memory_limit"] = limit
        t0 = time.time_ns()
        started = time.monotonic()
        try:
            for i in range(1, args.events + 1):
                log.append(
                    TickReceived(
                        symbol="AAPL", bid=100.0, ask=100.02, size=1.0, ts_event=t0 + i, source="m"
                    )
                )
                if i % args.every == 0:
                    log.flush()
                    with log._reader() as cur:
                        tags = cur.execute(
                            "SELECT tag, round(memory_usage_bytes / 2^20, 1) FROM duckdb_memory()"
                            " WHERE memory_usage_bytes > 0 ORDER BY tag"
                        ).fetchall()
                        cur.execute("CHECKPOINT")
                    sample = {
                        "events": i,
                        "s": round(time.monotonic() - started, 1),
                        "rss_mib": round(rss_kib() / 1024, 1),
                        "duckdb_mib": dict(tags),
                    }
                    figures["samples"].append(sample)
                    print(json.dumps(sample), flush=True)
        except PersistenceError as exc:
            failed = {"committed": log.committed_seq, "error": str(exc).splitlines()[0]}
            print(json.dumps({"write_failed": failed}), flush=True)
            if args.json:
                figures["write_failed"] = failed
                print(json.dumps(plain(figures)), file=sys.__stdout__, flush=True)
            # DuckDB may abort the process when a database that failed a commit is closed:
            # leave without closing it.
            shutil.rmtree(tmp, ignore_errors=True)
            sys.stdout.flush()
            os._exit(1)
        log.close()
    return figures


if __name__ == "__main__":
    sys.exit(main())
