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
CPU (server, Chromium, SSE clients, page driver, machine idle: ``testkit/proc_cpu.py``). The server,
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
import http.client
import json
import multiprocessing
import os
import re
import resource
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import bench_parser, report
from bench.ui_latency import PROBE, launch_browser, publish_probe
from testkit.access_server import PASSWORDS, VIEWER_TOKEN, Client, make_access
from testkit.dashboard import engine_config
from testkit.loop_profile import DrainProfile, LoopProfile
from testkit.net import free_port
from testkit.proc_cpu import descendants_cpu_by_kind, machine_cpu_s
from testkit.stats import percentile

LAG_EVERY = 10  # decode every 10th frame for the lag (keeps the clients' own CPU small)
FRAME = re.compile(rb"^id: (\d+)\ndata: ([^\n]*)\n", re.MULTILINE)


class SseClient(threading.Thread):
    """One ``/api/events`` stream; counts frames, seq gaps, overflows and reconnects."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.received = self.gaps = self.dups = self.overflows = self.disconnects = 0
        self.last_seq = 0
        self.lags_ms: list[float] = []
        self.conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            headers = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
            if self.last_seq:
                headers["Last-Event-ID"] = str(self.last_seq)
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.conn.request("GET", "/api/events?topic=%3E", headers=headers)
                self._read(self.conn.getresponse())
            except (OSError, http.client.HTTPException):
                pass
            finally:
                if self.conn is not None:
                    self.conn.close()
            if not self.stop.is_set():
                self.disconnects += 1
                self.stop.wait(0.2)

    def _read(self, resp: http.client.HTTPResponse) -> None:
        # Whole chunks parsed with regular expressions, not line by line in Python: 50 clients
        # on this host must not take the CPU the server is measured on (as clients on other
        # machines would not).
        buf = b""
        while not self.stop.is_set():
            data = resp.read1(65536)
            if not data:
                return
            buf += data
            end = buf.rfind(b"\n\n")
            if end < 0:
                continue
            block, buf = buf[: end + 2], buf[end + 2 :]
            if b"event: overflow" in block:
                self.overflows += 1
            for seq_text, payload in FRAME.findall(block):
                seq = int(seq_text)
                self.received += 1
                if seq <= self.last_seq:
                    self.dups += 1
                else:
                    if self.last_seq and seq != self.last_seq + 1:
                        self.gaps += seq - self.last_seq - 1
                    self.last_seq = seq
                if self.received % LAG_EVERY == 0:
                    ts_init = json.loads(payload)["ts_init"]
                    self.lags_ms.append((time.time_ns() - ts_init) / 1e6)

    def close(self) -> None:
        sock = self.conn.sock if self.conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SseSummary:
    """What the driver needs of one :class:`SseClient` (also when it ran in a child)."""

    def __init__(self, client: SseClient) -> None:
        self.received, self.gaps, self.dups = client.received, client.gaps, client.dups
        self.overflows, self.disconnects = client.overflows, client.disconnects
        self.lags_ms = list(client.lags_ms)
        self.alive = client.is_alive()


def run_sse_clients(port: int, n: int, stop: threading.Event) -> list[SseClient]:
    """Start ``n`` SSE clients on ``port``; they stream until ``stop`` is set."""
    clients = [SseClient(port, stop) for _ in range(n)]
    for c in clients:
        c.start()
    return clients


def stop_sse_clients(clients: list[SseClient], stop: threading.Event) -> list[SseSummary]:
    """Stop and join the clients; their summaries."""
    stop.set()
    for c in clients:
        c.close()
    for c in clients:
        c.join(5)
    return [SseSummary(c) for c in clients]


def sse_in_child(port: int, n: int, conn: Any) -> None:
    """``--sse-process``: run the clients here until the driver says stop; send summaries."""
    stop = threading.Event()
    clients = run_sse_clients(port, n, stop)
    conn.send("started")
    conn.recv()
    conn.send(stop_sse_clients(clients, stop))


class Sampler(threading.Thread):
    """Inbox depth (``health()['bus']['queue_depth']``) and RSS every ``period`` seconds."""

    def __init__(self, kernel: Any, stop: threading.Event, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.kernel, self.stop, self.period = kernel, stop, period
        self.depths: list[int] = []
        self.rss_mib: list[float] = []

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.depths.append(int(self.kernel.health()["bus"]["queue_depth"]))
            self.rss_mib.append(rss_mib())


class PushTimes:
    """When each session's message carrying a probe fill was written (bench instrumentation).

    Wraps the dashboard's ``_flush_trades`` (which takes the fills queued for a session) and
    ``SessionBridge._drain`` (whose end sends the session's one Bokeh message, the socket
    write included) so the server side of publish -> page can be told from the page's own
    share: ``written[fill_id]`` holds one wall time (ms) per session that sent it. For the
    same drains ``stages[fill_id]`` holds when (ms) the session's first update since its last
    drain was posted (the bus dispatching to the session), its drain was handed to the loop
    (the end of the dispatch round), and the drain started."""

    STAGES = ("posted", "handed to the loop", "drain started", "written")

    def __init__(self) -> None:
        from panel_app.push import SessionBridge
        from panel_app.views.dashboard import DashboardView

        self.written: dict[str, list[float]] = {}
        self.stages: dict[str, list[tuple[float, float, float, float]]] = {}
        flush_trades, drain = DashboardView._flush_trades, SessionBridge._drain
        post, schedule = SessionBridge.post, SessionBridge._schedule
        times = self

        def timed_flush(view: Any) -> None:
            ids = [e.fill_id for e in view._pending_trades]
            flush_trades(view)
            view.bridge.__dict__.setdefault("_bench_fills", []).extend(ids)

        def timed_post(bridge: Any, update: Any, *, key: object = None) -> None:
            bridge.__dict__.setdefault("_bench_posted", time.time() * 1000)
            post(bridge, update, key=key)

        def timed_schedule(bridge: Any) -> None:
            bridge.__dict__["_bench_handed"] = time.time() * 1000
            schedule(bridge)

        def timed_drain(bridge: Any) -> None:
            started = time.time() * 1000
            posted = bridge.__dict__.pop("_bench_posted", started)
            handed = bridge.__dict__.get("_bench_handed", posted)
            drain(bridge)
            ids = bridge.__dict__.pop("_bench_fills", None)
            if ids:
                now = time.time() * 1000
                for fill in ids:
                    times.written.setdefault(fill, []).append(now)
                    times.stages.setdefault(fill, []).append((posted, handed, started, now))

        DashboardView._flush_trades = timed_flush  # type: ignore[method-assign,assignment]
        SessionBridge._drain = timed_drain  # type: ignore[method-assign,assignment]
        SessionBridge.post = timed_post  # type: ignore[method-assign,assignment]
        SessionBridge._schedule = timed_schedule  # type: ignore[method-assign,assignment]

    def latencies(self, sent: dict[str, float]) -> list[float]:
        """Server push latency (ms) of every (probe, session) pair that was written."""
        return [t - sent[f] for f, ts in self.written.items() if f in sent for t in ts]

    def stage_latencies(self, sent: dict[str, float]) -> list[list[float]]:
        """Per stage (``STAGES``), ms after publication, of every (probe, session) pair."""
        rows = [
            [t - sent[f] for t in stage]
            for f, stages in self.stages.items()
            if f in sent
            for stage in stages
        ]
        return [list(column) for column in zip(*rows, strict=True)] if rows else []


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_budget(
    server_s: float,
    kinds0: dict[str, float],
    kinds1: dict[str, float],
    machine0: tuple[float, float],
    machine1: tuple[float, float],
    wall: float,
) -> str:
    """Who had the CPU while measuring, in % of one core: this process (server, engine and,
    without the child options, the SSE clients and the page driver), each kind of descendant
    process (``testkit/proc_cpu.py``), and the machine's busy and idle time over all cores."""
    parts = [f"server process {100 * server_s / wall:.0f} %"]
    for kind in sorted(set(kinds0) | set(kinds1)):
        used = kinds1.get(kind, 0.0) - kinds0.get(kind, 0.0)
        parts.append(f"{kind} {100 * used / wall:.0f} %")
    busy, idle = (machine1[i] - machine0[i] for i in (0, 1))
    cores = os.cpu_count() or 1
    return (
        f"CPU, % of one core: {', '.join(parts)}; machine busy {100 * busy / wall:.0f} %,"
        f" idle {100 * idle / wall:.0f} % of {100 * cores} %"
    )


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def open_pages(browser: Any, url: str, port: int, n: int) -> tuple[list[Any], list[Any]]:
    """``n`` signed-in pages (alice's session cookie from a real login), probe installed."""
    client = Client(port)
    reply = client.login("alice", PASSWORDS["alice"])
    if not client.cookies:
        raise RuntimeError(f"login failed: HTTP {reply.status}")
    cookies = [{"name": k, "value": v, "url": url} for k, v in client.cookies.items()]
    contexts, pages = [], []
    for _ in range(n):  # start every load first, then wait: the pages load in parallel
        ctx = browser.new_context(viewport={"width": 1300, "height": 900})
        ctx.add_cookies(cookies)
        page = ctx.new_page()
        page.goto(url, wait_until="commit", timeout=60_000)
        contexts.append(ctx)
        pages.append(page)
    for page in pages:
        page.locator("[data-testid=last-trade]").first.wait_for(timeout=120_000)
        page.evaluate(PROBE)
    return contexts, pages


def publish_probes(kernel: Any, until: float, sent: dict[str, float], interval_s: float) -> None:
    """Publish a bench fill every ``interval_s`` until ``until`` (publish wall times, ms, go
    in ``sent``), whether or not the pages keep up."""
    while time.monotonic() < until:
        fill, sent_ms = publish_probe(kernel, "load", len(sent))
        sent[fill] = sent_ms
        time.sleep(interval_s)


def latencies_seen(
    seen_per_page: list[dict[str, float]], sent: dict[str, float], timeout_s: float
) -> tuple[list[float], int, int]:
    """(latencies ms, missed, never shown) of the ``sent`` fills in each page's
    ``window.__seen``: a fill a page did not show within ``timeout_s`` is missed and not in
    the latencies; ``never shown`` counts those of them the page had not shown at all by the
    time it was asked (so a slow page can be told from one that stopped updating)."""
    latencies: list[float] = []
    missed = never = 0
    for seen in seen_per_page:
        for fill, sent_ms in sent.items():
            shown = seen.get(fill)
            if shown is None or shown - sent_ms > timeout_s * 1000:
                missed += 1
                never += shown is None
            else:
                latencies.append(shown - sent_ms)
    return latencies, missed, never


def pages_in_child(url: str, port: int, n: int, idle: bool, conn: Any) -> None:
    """``--browsers-process``: drive the pages from here (Playwright's client decodes every
    message of ten pages, ~20-30 % of a core, which on one host otherwise competes with the
    server for its GIL, as browsers on the users' machines would not). Sends "open" with the
    seconds the pages took, waits for "collect", sends each page's ``window.__seen``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw, idle)
        t0 = time.monotonic()
        contexts, pages = open_pages(browser, url, port, n)
        conn.send(("open", time.monotonic() - t0))
        conn.recv()
        conn.send([page.evaluate("() => window.__seen") for page in pages])
        for ctx in contexts:
            ctx.close()
        browser.close()


def pct(values: list[float]) -> str:
    """p50, p95 and p99 of ``values`` (ms), as one line prints them."""
    p = [percentile(values, q) for q in (50, 95, 99)]
    return f"p50 {p[0]:.1f} ms  p95 {p[1]:.1f} ms  p99 {p[2]:.1f} ms"


def pct_figures(values: list[float]) -> dict[str, Any]:
    """p50, p95, p99 (ms) and the sample count of ``values``, for ``--json``."""
    return {f"p{q}_ms": percentile(values, q) for q in (50, 95, 99)} | {"samples": len(values)}


def start_pages(
    scope: contextlib.ExitStack, url: str, port: int, n: int, *, idle: bool, in_child: bool
) -> tuple[float, Callable[[], list[dict[str, float]]]]:
    """Open ``n`` signed-in pages, here or (``in_child``) from a child process, closed with
    ``scope``. Returns (seconds the pages took to open, a call that reads every page's
    ``window.__seen``)."""
    if in_child:
        mp = multiprocessing.get_context("spawn")
        conn, child_conn = mp.Pipe()
        child = mp.Process(
            target=pages_in_child, args=(url, port, n, idle, child_conn), daemon=True
        )
        child.start()
        scope.callback(child.join, 60)
        _, opened_s = conn.recv()

        def collect_from_child() -> list[dict[str, float]]:
            conn.send("collect")
            return list(conn.recv())

        return opened_s, collect_from_child
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    browser = launch_browser(scope.enter_context(sync_playwright()), idle)
    scope.callback(browser.close)
    contexts, pages = open_pages(browser, url, port, n)
    for ctx in contexts:
        scope.callback(ctx.close)
    return time.monotonic() - t0, lambda: [page.evaluate("() => window.__seen") for page in pages]


def remove_run_files(config: Any) -> None:
    """Delete the temp folder a bench run's kernel wrote its DuckDB and broker files to
    (call after ``kernel.stop()``): a bench leaves nothing behind."""
    shutil.rmtree(Path(config.storage.db_path).parent, ignore_errors=True)


def start_kernel(prefix: str, rate: float, *, tuned: bool = True) -> tuple[Any, Any]:
    """The benches' engine: the test config (temp DuckDB under a new ``prefix`` folder, fast
    SMA) with the synthetic feed at ``rate`` ticks/s, started with the dashboard's shared
    streams; ``tuned``: the interpreter settings of ``seamless serve``. (config, kernel)."""
    from engine.kernel import Kernel
    from engine.process_tuning import tune_process
    from panel_app.services import services_for

    config = engine_config(Path(tempfile.mkdtemp(prefix=prefix)))
    config = dataclasses.replace(config, feed=dataclasses.replace(config.feed, rate=rate))
    kernel = Kernel.from_config(config).start()
    services_for(kernel)
    if tuned:
        tune_process(config.engine)
    return config, kernel


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("load", __doc__)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--sse", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
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
    args = parser.parse_args(argv)
    report(args.json, lambda: run(args))


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
    rss = sampler.rss_mib or [rss_mib()]
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
