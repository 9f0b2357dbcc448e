"""UI push latency: engine event -> change in the page's DOM, with 1 and 10 browser sessions.

Serves the real dashboard over a real engine (temp DuckDB, synthetic feed) in-process, opens
N headless Chromium pages (Debian's ``chromium``), publishes ``TradeExecuted`` events with
known fill ids one at a time and records, inside each page, the wall time at which the
``last-trade`` badge or one of the newest rows of the recent-trades table first shows that id
(MutationObservers on the shadow roots holding them: an observer on the body does not see
into shadow roots). The table matters when the engine's own strategy trades: its fill can
share a push with the probe's and take the badge.
Prints p50/p95/p99 per session count, the events missed (not shown within
``--event-timeout`` seconds: reported apart, not folded into the percentiles), the
server-side cost per applied update and per drain (including the flush of the held
document changes) and the page load time. Every wait is bounded; a session count stops
after ``--budget`` seconds.

With ``--server-process`` the engine and the dashboard server run in a child process and
this one only drives the browsers (the Playwright client's polling then no longer competes
with the server's event loop for the GIL); fills are published through a pipe, and the
publish time is still taken where the fill is published (the same clock as the pages').
The server process gets the interpreter settings of ``seamless serve`` (GIL switch interval,
garbage collector: :mod:`engine.process_tuning`); ``--untuned`` keeps CPython's defaults, for
the baseline. ``--browsers-idle`` runs Chromium under ``SCHED_IDLE``: on this one host the ten
renderers otherwise take the server's CPU, which browsers on the users' machines would not.

    python -m bench ui_latency [--events 200] [--sessions 1 10] [--server-process]
                               [--browsers-idle] [--untuned] [--json]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Any

from bench import bench_parser, report
from bench.pages import PROBE, open_page, publish_probe, wait_seen
from testkit import free_port
from testkit.dashboard import launch_browser, remove_run_files, start_kernel
from testkit.measure import percentile


class EngineSide:
    """The server side of the benchmark: the kernel and the sessions the server built."""

    def __init__(self, kernel: Any, sessions: list[Any]) -> None:
        self.kernel = kernel
        self.sessions = sessions
        self.live: list[Any] = []

    def reset(self) -> None:
        """Forget the sessions of an earlier session count."""
        del self.sessions[:]

    def mark(self) -> None:
        """Count bridge work from now on, over the sessions open now."""
        self.live = [s for s in self.sessions if not s.bridge.closed]
        self.base = self._raw()

    def _raw(self) -> list[tuple[int, int, int]]:
        return [
            (s.bridge.stats.applied, s.bridge.stats.drains, s.bridge.stats.drain_ns)
            for s in self.live
        ]

    def totals(self) -> tuple[int, int, int]:
        """(updates applied, drains, drain ns) summed over the marked sessions since mark()."""
        applied = drains = drain_ns = 0
        for (a, d, n), (a0, d0, n0) in zip(self._raw(), self.base, strict=True):
            applied += a - a0
            drains += d - d0
            drain_ns += n - n0
        return applied, drains, drain_ns

    def publish(self, prefix: str, i: int) -> tuple[str, float]:
        return publish_probe(self.kernel, prefix, i)


class RemoteEngine:
    """An :class:`EngineSide` in the server process, driven over a pipe."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _call(self, *msg: Any) -> Any:
        self.conn.send(msg)
        return self.conn.recv()

    def reset(self) -> None:
        self._call("reset")

    def mark(self) -> None:
        self._call("mark")

    def totals(self) -> tuple[int, int, int]:
        a, d, n = self._call("totals")
        return int(a), int(d), int(n)

    def publish(self, prefix: str, i: int) -> tuple[str, float]:
        fill, sent_ms = self._call("publish", prefix, i)
        return str(fill), float(sent_ms)


def run(
    n_sessions: int,
    n_events: int,
    browser: Any,
    url: str,
    engine: EngineSide | RemoteEngine,
    *,
    event_timeout_s: float,
    budget_s: float,
    poll_s: float = 0.02,
) -> dict[str, Any]:
    """Publish ``n_events`` fills one at a time; each is waited for (at most
    ``event_timeout_s``) in every page. A page that has not shown a fill in time counts as
    one *missed* sample (reported apart, never folded into the percentiles). The whole run
    stops after ``budget_s``; events not published by then are reported as not sent."""

    engine.reset()
    contexts, pages, loads = [], [], []
    for _ in range(n_sessions):
        ctx, page, load_s = open_page(browser, url)
        page.evaluate(PROBE)
        contexts.append(ctx)
        pages.append(page)
        loads.append(load_s)
    time.sleep(1.0)
    engine.mark()
    latencies: list[float] = []
    missed = 0
    sent = 0
    run_deadline = time.monotonic() + budget_s
    for i in range(n_events):
        if time.monotonic() > run_deadline:
            break
        fill, sent_ms = engine.publish("bench", i)
        sent += 1
        missed += wait_seen(pages, fill, sent_ms, event_timeout_s, poll_s, latencies)
    applied, drains, drain_ns = engine.totals()
    for ctx in contexts:
        ctx.close()
    return {
        "sessions": n_sessions,
        "events": sent,
        "not_sent": n_events - sent,
        "samples": len(latencies),
        "missed": missed,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
        "server_us_per_update": round(drain_ns / 1e3 / max(1, applied), 1),
        "server_us_per_drain": round(drain_ns / 1e3 / max(1, drains), 1),
        "updates_applied": applied,
        "drains": drains,
        "page_load_s": statistics.fmean(loads),
    }


def start_server(
    intervals_kind: str, quiet: bool, tuned: bool = True
) -> tuple[EngineSide, int, Any]:
    """The real engine and dashboard server (this process); returns (engine side, port, stop).

    ``tuned``: this process gets the interpreter settings ``seamless serve`` applies
    (:func:`engine.process_tuning.tune_process`); False keeps CPython's defaults."""
    import panel as pn

    from panel_app.app import create_session
    from panel_app.services import release_services

    intervals: dict[str, Any] = {}
    if intervals_kind == "default":
        intervals = {"pnl_throttle_s": 5.0, "runner_throttle_s": 10.0, "market_sample_s": 1.0}
    config, kernel = start_kernel("seamless-bench-", tuned=tuned, quiet=quiet, **intervals)
    sessions: list[Any] = []

    def app() -> Any:
        session = create_session(kernel, "operator", "operator")
        sessions.append(session)
        return session.template

    port = free_port()
    server = pn.serve(
        {"/": app},
        port=port,
        address="127.0.0.1",
        threaded=True,
        show=False,
        websocket_origin=[f"127.0.0.1:{port}"],
        check_unused_sessions_milliseconds=500,
        unused_session_lifetime_milliseconds=5_000,
    )
    time.sleep(2)

    def stop() -> None:
        server.stop()
        release_services(kernel)
        kernel.stop()
        remove_run_files(config)

    return EngineSide(kernel, sessions), port, stop


def serve_in_child(conn: Any, intervals_kind: str, quiet: bool, tuned: bool) -> None:
    """Server process of ``--server-process``: answer the driver's calls until "stop"."""
    engine, port, stop = start_server(intervals_kind, quiet, tuned)
    conn.send(port)
    try:
        while True:
            name, *args = conn.recv()
            if name == "stop":
                break
            conn.send(getattr(engine, name)(*args))
    finally:
        stop()
        conn.send("stopped")


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("ui_latency", __doc__, events=200)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--event-timeout", type=float, default=2.0, help="seconds to wait for one event"
    )
    parser.add_argument(
        "--budget", type=float, default=120.0, help="seconds at most per session count"
    )
    parser.add_argument(
        "--intervals",
        choices=("default", "test"),
        default="default",
        help="throttled-tier intervals: the dashboard's defaults (P&L 5 s, runner 10 s, market"
        " 1 s) or the browser tests' fast ones (0.5 s each)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no live strategy: the bench's fills are the only trades (the test engine's fast"
        " SMA otherwise trades several times a second, each trade updating every page)",
    )
    parser.add_argument(
        "--server-process",
        action="store_true",
        help="run the engine and dashboard server in a child process (browsers driven here)",
    )
    parser.add_argument(
        "--browsers-idle",
        action="store_true",
        help="run the Chromium processes under SCHED_IDLE (they get only the CPU the server"
        " leaves, as browsers on other machines would not take the server's)",
    )
    parser.add_argument(
        "--untuned",
        action="store_true",
        help="the server keeps CPython's defaults (GIL switch interval 5 ms, collector"
        " untouched) instead of what `seamless serve` sets",
    )
    report(parser.parse_args(argv), measure)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every session count of ``args`` in turn; print the figures and return them."""
    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {
        "events": args.events,
        "intervals": args.intervals,
        "server_process": args.server_process,
        "tuned": not args.untuned,
        "browsers_idle": args.browsers_idle,
        "runs": [],
    }

    engine: EngineSide | RemoteEngine
    if args.server_process:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=serve_in_child,
            args=(child, args.intervals, args.quiet, not args.untuned),
            daemon=True,
        )
        proc.start()
        port = parent.recv()
        engine = RemoteEngine(parent)

        def stop() -> None:
            parent.send(("stop",))
            parent.recv()
            proc.join(30)

    else:
        engine, port, stop = start_server(args.intervals, args.quiet, not args.untuned)
    try:
        with sync_playwright() as pw:
            browser = launch_browser(pw, args.browsers_idle)
            where = "server in a child process" if args.server_process else "one process"
            where += ", CPython defaults" if args.untuned else ", tuned as seamless serve"
            if args.browsers_idle:
                where += ", browsers under SCHED_IDLE"
            print(
                f"UI push latency, {args.events} TradeExecuted events each "
                f"(publish -> DOM of every session); {args.intervals} throttle intervals; "
                f"{where}"
            )
            for n in args.sessions:
                r = run(
                    n,
                    args.events,
                    browser,
                    f"http://127.0.0.1:{port}/",
                    engine,
                    event_timeout_s=args.event_timeout,
                    budget_s=args.budget,
                )
                figures["runs"].append(r)
                print(
                    f"  {r['sessions']:>2} session(s): p50 {r['p50_ms']:.1f} ms  "
                    f"p95 {r['p95_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
                    f"(mean {r['mean_ms']:.1f} ms, {r['samples']} samples, "
                    f"{r['missed']} missed > {args.event_timeout:g} s, "
                    f"{r['events']} events sent, {r['not_sent']} not sent)",
                    flush=True,
                )
                print(
                    f"      server: {r['server_us_per_update']} us per applied update, "
                    f"{r['server_us_per_drain']} us per drain incl. flush "
                    f"({r['updates_applied']} updates in {r['drains']} drains); "
                    f"page load {r['page_load_s']:.2f} s (cold cache, to content)",
                    flush=True,
                )
            browser.close()
    finally:
        stop()
    return figures


if __name__ == "__main__":
    main()
