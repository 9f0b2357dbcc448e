"""Throughput of the event bus against a plain Python callback list, measured in one run.

Run: ``python -m bench bus [--events N] [--json]``. Prints events/s for 1 and 10 subscribers in
synchronous mode (dispatch in the caller) and threaded mode (publisher thread -> inbox ->
dispatcher thread), and the ratio to the baseline of calling the same callbacks from a list.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench import bench_parser, report
from streams.bus import EventBus
from streams.events import Event, TickReceived


def _baseline(events: list[Event], subscribers: int) -> float:
    callbacks: list[Callable[[Event], None]] = [lambda e: None for _ in range(subscribers)]
    start = time.perf_counter()
    for event in events:
        for cb in callbacks:
            cb(event)
    return len(events) / (time.perf_counter() - start)


def _through_bus(events: list[Event], subscribers: int, threaded: bool) -> float:
    bus = EventBus(threaded=threaded, capacity=1_000_000).start()
    for _ in range(subscribers):
        bus.subscribe("data.ticks.*", lambda e: None)
    start = time.perf_counter()
    for event in events:
        bus.publish(event)
    bus.join()
    rate = len(events) / (time.perf_counter() - start)
    bus.stop()
    return rate


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("bus", __doc__, events=500_000)
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the bus and the baseline for 1 and 10 subscribers; print them, return the figures."""
    figures: dict[str, Any] = {"events": args.events, "runs": []}
    # distinct symbols so no conflation can happen; the inbox is big enough to never fill
    events: list[Event] = [
        TickReceived(symbol=f"S{i % 50}", last=1.0 + i) for i in range(args.events)
    ]
    print(f"bus throughput, {args.events:,} tick events")
    print(f"{'subscribers':>11} {'mode':>9} {'events/s':>12} {'baseline/s':>12} {'ratio':>6}")
    for subscribers in (1, 10):
        base = _baseline(events, subscribers)
        for threaded in (False, True):
            rate = _through_bus(events, subscribers, threaded)
            mode = "threaded" if threaded else "sync"
            print(f"{subscribers:>11} {mode:>9} {rate:>12,.0f} {base:>12,.0f} {rate / base:>6.2f}")
            figures["runs"].append(
                {
                    "subscribers": subscribers,
                    "mode": mode,
                    "events_per_s": rate,
                    "baseline_per_s": base,
                    "ratio": rate / base,
                }
            )
    return figures


if __name__ == "__main__":
    main()
