"""Load: browser sessions and SSE clients on one server while the feed runs accelerated.

A real Kernel (temp DuckDB, synthetic feed at ``--rate`` ticks/s, the test engine's fast SMA
strategy trading) is served by :class:`DashboardServer` (non-dev access: password users and
api tokens) on a free loopback port. ``--sessions`` headless Chromium pages sign in (cookie of
a real ``/login``) and ``--sse`` threads stream ``/api/events?topic=>`` with a viewer bearer
token (reconnecting with ``Last-Event-ID`` after an overflow or a disconnect) for
``--seconds``. Meanwhile the main thread publishes a ``TradeExecuted`` fill every
``--probe-every`` seconds (whether or not the pages keep up) and times publish -> DOM in
every page as ``python -m bench ui_latency`` does, and on the server when each
session's message carrying the fill was written (:class:`PushTimes`). The pages are opened
with the strategy paused (under the full load ten pages on this host took minutes to load);
with ``--quiet`` it stays paused, so the bench's fills are the only trades.
Prints figures (no pass/fail): bus inbox depth, dispatch rate, back-pressure; SSE events, lag
(receive time minus ``ts_init``, every 10th frame), seq gaps, disconnects, overflows; the
strategy's fill rate; server push and browser latency; process RSS and CPU, and who had the
CPU (server, Chromium, SSE clients, page driver, machine idle: ``testkit/measure.py``). The server,
engine, SSE clients and the Playwright driver share this process (with
``--sse-process`` the SSE clients run in a child process: their decoding then no longer
competes with the server for the GIL, as clients on other machines would not; with
``--browsers-process`` the pages are driven from a child process for the same reason: the
Playwright client decodes every message of every page). Every wait is bounded.

    python -m bench load [--sessions 10] [--sse 50] [--seconds 60] [--rate 500]
                         [--sse-process] [--browsers-process] [--browsers-idle]
                         [--untuned] [--loop-profile] [--drain-profile]
                         [--sse-flush S] [--probe-every S] [--quiet] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import statistics
import threading
import time
from typing import Any

from bench import bench_parser, report
from bench.load_meters import PushTimes, Sampler, cpu_budget, cpu_s, pct, pct_figures
from bench.pages import latencies_seen, publish_probes, start_pages
from bench.sse_clients import SseClient, SseSummary, run_sse_clients, sse_in_child, stop_sse_clients
from testkit import free_port
from testkit.access_server import make_access
from testkit.dashboard import remove_run_files, start_kernel
from testkit.loop_profile import DrainProfile, LoopProfile
from testkit.measure import descendants_cpu_by_kind, machine_cpu_s, rss_kib


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("load", __doc__, sessions=10, sse=50, seconds=60.0)
    parser.add_argument("--rate", type=float, default=500.0, help="synthetic ticks per second")
    parser.add_argument("--event-timeout", type=float, default=2.0, help="per browser event")
    parser.add_argument(
        "--sse-process", action="store_true", help="run the SSE clients in a child process"
    )
    parser.add_argument(
        "--browsers-process",
        action="store_true",
        help="drive the pages from a child process (Playwright's client off the server's GIL)",
    )
    parser.add_argument(
        "--browsers-idle",
        action="store_true",
        help="run Chromium under SCHED_IDLE (the CPU the server leaves, as on other machines)",
    )
    parser.add_argument(
        "--probe-every", type=float, default=0.5, help="seconds between bench fills"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="the strategy stays paused: the bench's fills are the only trades (the feed, the"
        " throttled tier and the SSE clients run as before)",
    )
    parser.add_argument(
        "--sse-flush",
        type=float,
        default=None,
        help="access.sse_flush_interval_s (default: the configured default)",
    )
    parser.add_argument(
        "--untuned",
        action="store_true",
        help="keep CPython's defaults instead of what `seamless serve` sets (the baseline)",
    )
    parser.add_argument(
        "--loop-profile",
        action="store_true",
        help="time every event-loop callback while measuring (testkit/loop_profile.py)",
    )
    parser.add_argument(
        "--drain-profile",
        action="store_true",
        help="cProfile the sessions' drains while measuring (testkit/loop_profile.py)",
    )
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the load of ``args``, measure; print the figures and return them."""

    from panel_app.server import DashboardServer
    from panel_app.services import release_services

    config, kernel = start_kernel("seamless-load-", args.rate, tuned=not args.untuned)
    port = free_port()
    access = make_access()
    if args.sse_flush is not None:
        access = dataclasses.replace(access, sse_flush_interval_s=args.sse_flush)
    server = DashboardServer(config, port=port, kernel=kernel, access=access)
    url = f"http://127.0.0.1:{port}/"
    stop = threading.Event()
    push = PushTimes()
    probes: dict[str, float] = {}
    fill_ids: list[str] = []
    clients: list[SseClient] = []
    summaries: list[SseSummary] = []
    child: Any = None
    sampler = Sampler(kernel, stop)
    profiles: list[LoopProfile | DrainProfile] = []
    if args.loop_profile:
        profiles.append(LoopProfile())
    if args.drain_profile:
        profiles.append(DrainProfile())
    profile_lines: list[str] = []
    for profile in profiles:
        profile.install()
    mp = multiprocessing.get_context("spawn")
    try:
        server.start_background()
        with contextlib.ExitStack() as scope:
            # Open the pages before the strategy trades: under the full load ten pages on
            # this host took 4-5 minutes to load (their renderers cannot keep up, see
            # python -m bench page_cost); the figures are of pages that are open.
            kernel.command("pause", "engine")
            opened_s, collect_seen = start_pages(
                scope,
                url,
                port,
                args.sessions,
                idle=args.browsers_idle,
                in_child=args.browsers_process,
            )
            print(f"{args.sessions} pages open in {opened_s:.1f} s", flush=True)
            if not args.quiet:
                kernel.command("resume", "engine")
            if args.sse_process:
                conn, child_conn = mp.Pipe()
                child = mp.Process(target=sse_in_child, args=(port, args.sse, child_conn))
                child.start()
                conn.recv()
            else:
                clients = run_sse_clients(port, args.sse, stop)
            sampler.start()
            for profile in profiles:
                profile.reset()
            bus, inbox = kernel.bus, kernel.bus._inbox
            fills = bus.subscribe(
                "fills.*", lambda e: fill_ids.append(getattr(e, "fill_id", "")), name="bench"
            )
            labels = {child.pid: "SSE clients"} if child is not None else {}
            kinds0, machine0 = descendants_cpu_by_kind(labels), machine_cpu_s()
            d0, c0, cpu0, w0 = bus.stats.dispatched, inbox.blocked_puts, cpu_s(), time.monotonic()
            publish_probes(kernel, w0 + args.seconds, probes, args.probe_every)
            time.sleep(args.event_timeout)  # the last fills' turn
            for profile in profiles:
                profile_lines.extend(profile.report())
            lat, missed, never = latencies_seen(collect_seen(), probes, args.event_timeout)
            sent = len(probes)
            wall = time.monotonic() - w0
            fills.dispose()
            dispatched, blocked, cpu = bus.stats.dispatched - d0, inbox.blocked_puts - c0, cpu_s()
            kinds1, machine1 = descendants_cpu_by_kind(labels), machine_cpu_s()
            if child is not None:
                conn.send("stop")
                summaries = conn.recv()
                child.join(10)
            else:
                summaries = stop_sse_clients(clients, stop)
            stop.set()
            sampler.join(5)
    finally:
        for profile in profiles:
            profile.remove()
        stop.set()
        server.stop()
        release_services(kernel)
        kernel.stop()
        remove_run_files(config)

    depths = sampler.depths or [0]
    lags = [x for c in summaries for x in c.lags_ms]
    recv = [c.received for c in summaries] or [0]
    where = "a child process" if args.sse_process else "this process"
    print(
        f"Load: {args.sessions} browser sessions + {args.sse} SSE clients, feed {args.rate:g}"
        f" ticks/s, {'SMA paused' if args.quiet else 'SMA trading'}, {wall:.1f} s measured"
    )
    print(
        f"  engine: {dispatched / wall:,.0f} events/s dispatched ({dispatched:,}), inbox depth"
        f" max {max(depths)} mean {statistics.fmean(depths):.1f} (capacity {inbox.capacity},"
        f" {len(depths)} samples), publishers held back {blocked:,} times"
    )
    print(
        f"  SSE: events per client min {min(recv):,} max {max(recv):,}"
        f" ({sum(recv) / wall:,.0f}/s in all); lag {pct(lags)} ({len(lags):,} samples);"
        f" seq gaps {sum(c.gaps for c in summaries)}, duplicates {sum(c.dups for c in summaries)},"
        f" overflows {sum(c.overflows for c in summaries)},"
        f" reconnects {sum(c.disconnects for c in summaries)},"
        f" threads still alive {sum(c.alive for c in summaries)} (clients in {where})"
    )
    own_fills = len([f for f in fill_ids if f not in probes])
    print(
        f"  fills: {own_fills / wall:.1f}/s by the strategy + {sent / wall:.1f}/s probes,"
        f" each pushed to every page"
    )
    server_push = push.latencies(probes)
    print(
        f"  server push (publish -> the session's message written): {pct(server_push)}"
        f" ({len(server_push)} probe x session samples)"
    )
    for stage, values in zip(PushTimes.STAGES, push.stage_latencies(probes), strict=False):
        print(f"    {stage + ':':<20} {pct(values)} after publication")
    print(
        f"  browser: {pct(lat)} (mean {statistics.fmean(lat) if lat else float('nan'):.1f} ms,"
        f" {len(lat)} samples, {missed} missed > {args.event_timeout:g} s of which {never} never"
        f" shown, {sent} fills sent)"
    )
    rss = sampler.rss_mib or [rss_kib() / 1024]
    print(
        f"  server process: RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB (max {max(rss):.0f}),"
        f" CPU {100 * (cpu - cpu0) / wall:.0f} % of one core (2 cores;"
        f" {'without' if args.sse_process else 'incl.'} SSE clients)"
    )
    print(f"  {cpu_budget(cpu - cpu0, kinds0, kinds1, machine0, machine1, wall)}")
    if profile_lines:
        print("  profiles while measuring (testkit/loop_profile.py):")
        print("\n".join(profile_lines))
    return {
        "sessions": args.sessions,
        "sse_clients": args.sse,
        "rate": args.rate,
        "strategy": "paused" if args.quiet else "trading",
        "seconds": wall,
        "events_per_s": dispatched / wall,
        "inbox_depth": {"max": max(depths), "mean": statistics.fmean(depths)},
        "publishers_held_back": blocked,
        "sse": {
            "events_per_client_min": min(recv),
            "events_per_client_max": max(recv),
            "events_per_s": sum(recv) / wall,
            "lag": pct_figures(lags),
            "seq_gaps": sum(c.gaps for c in summaries),
            "duplicates": sum(c.dups for c in summaries),
            "overflows": sum(c.overflows for c in summaries),
            "reconnects": sum(c.disconnects for c in summaries),
        },
        "strategy_fills_per_s": own_fills / wall,
        "probes_sent": sent,
        "server_push": pct_figures(server_push),
        "browser": pct_figures(lat) | {"missed": missed, "never_shown": never},
        "server_rss_mib": {"start": rss[0], "end": rss[-1], "max": max(rss)},
        "server_cpu_pct_of_core": 100 * (cpu - cpu0) / wall,
    }


if __name__ == "__main__":
    main()
