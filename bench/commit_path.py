"""The engine's critical commit path under the load bench's feed, without a dashboard.

A real Kernel (the load bench's: temp DuckDB, synthetic feed at ``--rate`` ticks/s, the
test engine's fast SMA strategy trading, the interpreter tuned as ``seamless serve`` is) runs
for ``--seconds`` after a warm-up. Every wait of the dispatch thread for a durable commit
(``GroupCommitLog.wait_durable``), every event-journal append of the log writer (where a
commit becomes durable) and every DuckDB insert (the journaled rows moved in afterwards) is
timed. The idle baseline, measured in the same run, puts the same rows through a DuckDB
insert and through a journal append, one commit each. Prints, per kind: calls per second,
the share of one thread's time they take, p50/p95; then the events logged by type and
criticality, so the number of critical commits a fill costs can be read off. Figures only,
no pass/fail.

Why: in the load run the dispatch thread is blocked on durability most of its time, and a
fill reaches the dashboard only after the commits before it in the queue.

    python -m bench commit_path [--rate 500] [--seconds 15] [--json]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bench_parser, report
from persistence import duckdb_file
from persistence.event_journal import EventJournal
from persistence.group_commit import GroupCommitLog
from testkit.dashboard import remove_run_files, start_kernel
from testkit.measure import percentile


def timed(fn: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
    """``fn`` that appends its duration (ms) to ``into``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - start) * 1000)

    return wrapper


def idle_insert_ms(
    rows: int, appender: bool, repeats: int = 200, *, journal: bool = False
) -> list[float]:
    """Baseline: inserts of ``rows`` tick rows into a fresh DuckDB file with nothing else
    running (the same ``duckdb_file.insert``, one commit each), through the writer's
    appender or (``appender`` False) as the parameterized statement used before it; with
    ``journal``, the same rows appended to a fresh event journal instead (one sync each)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="seamless-idle-"))
    if journal:
        into = EventJournal(folder / "x.journal").open()
    con = duckdb_file.connect(str(folder / "x.duckdb"), "")
    cur = con.cursor()
    for ddl in duckdb_file.DDL:
        cur.execute(ddl)
    payload = '{"symbol":"AAPL","price":100.0,"size":1.0}'
    kept = duckdb_file.events_appender(cur) if appender else None
    out, seq = [], 0
    for _ in range(repeats):
        batch = []
        for _ in range(rows):
            seq += 1
            row = (seq, f"e{seq}", 1, 1, "market.tick.AAPL", "tick", 1, False, payload, None, None)
            # the events table stores each row's chain hash last; the journal has none
            chain_hash = hashlib.sha256(seq.to_bytes(8, "big")).digest()
            batch.append(row if journal else (*row, chain_hash))
        start = time.perf_counter()
        if journal:
            into.append(batch)
        else:
            duckdb_file.insert(cur, batch, kept)
        out.append((time.perf_counter() - start) * 1000)
    con.close()
    if journal:
        into.close()
    shutil.rmtree(folder, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("commit_path", __doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="synthetic ticks per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the commit path of a loaded kernel and the idle baseline; return the figures."""

    times: dict[str, list[float]] = {"wait durable": [], "journal append": [], "DuckDB insert": []}
    GroupCommitLog.wait_durable = timed(GroupCommitLog.wait_durable, times["wait durable"])  # type: ignore[method-assign]
    sizes: list[int] = []
    insert = duckdb_file.insert
    idle = {(n, a): idle_insert_ms(n, a) for n in (1, 8) for a in (False, True)}
    idle_journal = {n: idle_insert_ms(n, False, journal=True) for n in (1, 8)}

    def counted(cur: Any, rows: Any, *more: Any, **options: Any) -> None:
        sizes.append(len(rows))
        insert(cur, rows, *more, **options)

    duckdb_file.insert = timed(counted, times["DuckDB insert"])
    EventJournal.append = timed(EventJournal.append, times["journal append"])  # type: ignore[method-assign]

    config, kernel = start_kernel("seamless-commit-path-", args.rate)
    try:
        time.sleep(args.warmup)
        for values in times.values():
            values.clear()
        sizes.clear()
        d0, w0 = kernel.bus.stats.dispatched, time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - w0
        dispatched = kernel.bus.stats.dispatched - d0
        snapshot = {name: list(values) for name, values in times.items()}
        rows_per_insert = sum(sizes) / max(1, len(sizes))
    finally:
        kernel.stop()
    print(
        f"Commit path: feed {args.rate:g} ticks/s, SMA trading, {wall:.1f} s measured,"
        f" {dispatched / wall:,.0f} events/s dispatched"
    )
    figures: dict[str, Any] = {
        "rate": args.rate,
        "seconds": wall,
        "events_per_s": dispatched / wall,
        "loaded": {},
        "idle_p50_ms": {},
    }
    for name, values in snapshot.items():
        share = 100 * sum(values) / 1000 / wall
        figures["loaded"][name] = {
            "per_s": len(values) / wall,
            "thread_share_pct": share,
            "p50_ms": percentile(values, 50),
            "p95_ms": percentile(values, 95),
        }
        print(
            f"  {name + ':':<16} {len(values) / wall:6.1f}/s, {share:4.1f} % of one thread,"
            f" p50 {percentile(values, 50):.2f} ms  p95 {percentile(values, 95):.2f} ms"
        )
    loaded = percentile(snapshot["DuckDB insert"], 50)
    print(f"  rows per DuckDB insert: {rows_per_insert:.1f} (mean)")
    print("  idle baseline, measured in this run (a fresh file, nothing else running), p50:")
    for n in (1, 8):
        before, now = percentile(idle[n, False], 50), percentile(idle[n, True], 50)
        journaled = percentile(idle_journal[n], 50)
        figures["idle_p50_ms"][f"{n}_rows"] = {
            "duckdb_statement": before,
            "duckdb_appender": now,
            "event_journal": journaled,
        }
        print(
            f"    {n} row(s): DuckDB parameterized statement {before:.2f} ms, appender"
            f" {now:.2f} ms; event journal {journaled:.2f} ms ({now / journaled:.1f}x"
            " faster than the appender)"
        )
    ratio = loaded / percentile(idle[8, True], 50)
    print(f"  the loaded inserts' p50 / the idle appender's, 8 rows: {ratio:.1f}x")
    figures["rows_per_insert"] = rows_per_insert
    figures["loaded_vs_idle_insert_p50"] = ratio
    import duckdb

    path = str(config.storage.db_path)
    with duckdb.connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT type, critical, count(*) FROM events GROUP BY ALL ORDER BY 3 DESC"
        ).fetchall()
    print("  events logged (whole run, warm-up included):")
    for type_name, critical, count in rows:
        print(f"    {type_name:<24} {'critical' if critical else '':<9} {count:,}")
    figures["events_logged"] = [
        {"type": type_name, "critical": bool(critical), "count": count}
        for type_name, critical, count in rows
    ]
    remove_run_files(config)
    return figures


if __name__ == "__main__":
    main()
