"""Crash loop: SIGKILL the real ``seamless run`` (or ``seamless serve``) at random moments.

Run: ``python -m bench crash_loop [--cycles 100] [--rate 500] [--seed 1] [--json]``, or
``python -m bench crash_loop --serve [--cycles 20]`` for the dashboard server.

The engine trades a fast synthetic feed with quick SMA crossovers, snapshots every second and
flushes batches every 50 ms, so random kills land during snapshot writes, batch flushes and
fills. After every kill and restart it checks:

* every event acknowledged before the kill (printed by ``--print-events critical``, which
  prints only after the commit) is in the log with the same seq;
* the log's seq runs 1..N with no gap or duplicate (across all runs);
* restore (latest valid snapshot + tail) equals a full replay of the log;
* the restarted run continues at the next seq, and after reconciliation its positions equal
  the broker's own account as the kill left it (or it started halted, never trading on a
  wrong position).

* every killed run is marked crashed in the runs table.

With ``--serve`` the target is the dashboard server (``seamless serve`` on a free loopback port,
same config plus a viewer API token, see ``testkit/serve_target.py``), killed 1-3 s after its
first streamed event: the acknowledged events are the critical events a client received on
``/api/events?topic=>`` (SSE publishes a critical event only after its commit).

The last run is stopped with SIGTERM (clean). Prints a summary; exit status 1 on any failure.
Short versions run in the default tests: tests/engine/test_cli_crash.py (5 kills of
``seamless run``) and tests/engine/test_serve_crash.py (3 kills of ``seamless serve``, through
:func:`testkit.crash_loop.crash_loop`, the loop this benchmark runs).

No baseline in the same run: the figures are counts (events lost must be 0), not speeds.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import bench_parser, report
from testkit.crash_loop import RunTarget, ServeTarget, Tally, Target, crash_loop
from testkit.engine_process import write_config


def main(argv: list[str] | None = None) -> int:
    """Run the crash loop; exit status 1 if any check failed."""
    parser = bench_parser("crash_loop", __doc__)
    parser.add_argument("--cycles", type=int, help="kills (default 100; 20 with --serve)")
    parser.add_argument("--rate", type=float, default=500.0, help="synthetic ticks per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--serve", action="store_true", help="kill the dashboard server (seamless serve) instead"
    )
    parser.add_argument("--min-s", type=float, help="shortest run before a kill (0.2; serve 1)")
    parser.add_argument("--max-s", type=float, help="longest run before a kill (2.5; serve 3)")
    parser.add_argument("--keep", help="work in this folder (kept) instead of a temporary one")
    summary = report(parser.parse_args(argv), run)
    return 1 if summary["failures"] else 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The crash loop of ``args``: prints progress and failures, returns the summary."""
    cycles = args.cycles if args.cycles is not None else (20 if args.serve else 100)
    min_s = args.min_s if args.min_s is not None else (1.0 if args.serve else 0.2)
    max_s = args.max_s if args.max_s is not None else (3.0 if args.serve else 2.5)
    rng = random.Random(args.seed)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="seamless-crash-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        config = write_config(folder, args.rate)
        target: Target = ServeTarget(config) if args.serve else RunTarget(config)
        figures = crash_loop(target, cycles, rng, min_s, max_s, tally)
    offsets = sorted(tally.kill_offsets)
    summary: dict[str, Any] = {
        "target": target.name,
        "cycles": tally.cycles,
        "restarts_survived": tally.restarts_ok,
        "events_acknowledged": tally.acknowledged,
        "events_lost": tally.lost,
        **figures,
        "snapshots_skipped_on_restore": tally.snapshots_skipped,
        "restarts_with_reconciliation": tally.reconciled_restarts,
        "restarts_halted": tally.halted_restarts,
        "killed_while_starting": tally.killed_starting,
        "kill_after_s": {"min": offsets[0], "max": offsets[-1]} if offsets else None,
    }
    if isinstance(target, ServeTarget):
        summary["sse_frames_received"] = target.sse_frames
        summary["sse_reconnects"] = target.sse_reconnects
    summary["failures"] = len(tally.failures)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, indent=2))
    for failure in tally.failures[:20]:
        print(failure)
    summary["failure_list"] = tally.failures
    return summary


if __name__ == "__main__":
    sys.exit(main())
