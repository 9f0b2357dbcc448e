"""Browser cost of one dashboard page: its main thread and the whole browser, per second.

A real Kernel (temp DuckDB, synthetic feed at ``--rate`` ticks/s, the test engine's fast SMA
strategy) served by :class:`DashboardServer` on a free loopback port; one headless Chromium
page signs in and, for ``--seconds`` each, Chrome's own counters (``Performance.getMetrics``:
task, script, layout and style-recalculation time, layout and recalculation counts) and the
CPU time of the whole browser (every Chromium process and thread, from ``/proc``: the
compositor, the display compositor and the raster workers draw in software here and cost
as much as the main thread) are read while the strategy trades and again while it is paused
(the throttled tier only: market sample, P&L, heartbeat). Prints both, and the fills per
second that made the difference. On a host where the pages and the server share the CPU,
``whole browser x pages`` is the CPU the pages need: compare it with the cores left beside
the server (``bench/load.py``).

The baseline, measured in the same run with a browser of its own: a bare page that changes
one word as often as the dashboard got fills. It is the floor of a pushed update in this
browser (a frame: style, layout, paint, composite, drawn in software), whatever the page shows.

    python -m bench page_cost [--rate 500] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import bench_parser, report
from bench.pages import open_pages
from testkit import free_port
from testkit.access_server import make_access
from testkit.dashboard import launch_browser, remove_run_files, start_kernel
from testkit.measure import descendants_cpu_s

METRICS = (
    "TaskDuration",
    "ScriptDuration",
    "LayoutDuration",
    "RecalcStyleDuration",
    "LayoutCount",
    "RecalcStyleCount",
)


def per_second(cdp: Any, kernel: Any, seconds: float) -> tuple[dict[str, float], float]:
    """Chrome's counters per second of wall time over ``seconds`` (``BrowserCPU``: every
    browser process), and fills per second."""
    fills: list[object] = []
    sub = kernel.bus.subscribe("fills.*", fills.append, name="bench")
    before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    before["BrowserCPU"] = descendants_cpu_s()
    start = time.monotonic()
    time.sleep(seconds)
    after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    after["BrowserCPU"] = descendants_cpu_s()
    wall = time.monotonic() - start
    sub.dispose()
    return {k: (after[k] - before[k]) / wall for k in (*METRICS, "BrowserCPU")}, len(fills) / wall


def show(label: str, figures: dict[str, float], fills: float) -> None:
    pct = {k: 100 * v for k, v in figures.items()}
    print(
        f"  {label:<22} main thread busy {pct['TaskDuration']:5.1f} %"
        f" (script {pct['ScriptDuration']:.1f} %, layout {pct['LayoutDuration']:.1f} %,"
        f" style {pct['RecalcStyleDuration']:.1f} %), whole browser {pct['BrowserCPU']:.0f} %"
        f" of a core; {figures['LayoutCount']:.0f} layouts/s,"
        f" {figures['RecalcStyleCount']:.0f} style recalcs/s; {fills:.1f} fills/s"
    )


#: A bare page whose one word changes ``rate`` times a second.
BARE_PAGE = """<!doctype html><html><body><p>fill <span id="n">0</span></p><script>
let n = 0;
setInterval(() => { document.getElementById("n").textContent = String(++n); }, 1000 / %s);
</script></body></html>"""


def bare_page_cpu(pw: Any, rate: float, seconds: float) -> float:
    """Whole-browser CPU (fraction of a core) of a bare page changing one word ``rate`` times
    a second, in a browser launched for it alone, at the dashboard pages' size."""
    browser = launch_browser(pw)
    try:
        page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        page.set_content(BARE_PAGE % max(rate, 0.1))
        time.sleep(2)
        cpu0, start = descendants_cpu_s(), time.monotonic()
        time.sleep(seconds)
        return (descendants_cpu_s() - cpu0) / (time.monotonic() - start)
    finally:
        browser.close()


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("page_cost", __doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="synthetic ticks per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the page trading, paused and the bare page; print and return the figures."""

    from playwright.sync_api import sync_playwright

    from panel_app.server import DashboardServer
    from panel_app.services import release_services

    config, kernel = start_kernel("seamless-page-cost-", args.rate)
    port = free_port()
    server = DashboardServer(config, port=port, kernel=kernel, access=make_access())
    try:
        server.start_background()
        with sync_playwright() as pw:
            browser = launch_browser(pw)
            contexts, pages = open_pages(browser, f"http://127.0.0.1:{port}/", port, 1)
            cdp = contexts[0].new_cdp_session(pages[0])
            cdp.send("Performance.enable")
            time.sleep(2)  # past the first paints
            trading = per_second(cdp, kernel, args.seconds)
            kernel.command("pause", "engine")
            time.sleep(1)
            paused = per_second(cdp, kernel, args.seconds)
            browser.close()
            bare = bare_page_cpu(pw, trading[1], args.seconds)
    finally:
        server.stop()
        release_services(kernel)
        kernel.stop()
        remove_run_files(config)
    print(f"One dashboard page, feed {args.rate:g} ticks/s, {args.seconds:g} s each:")
    show("strategy trading:", *trading)
    show("strategy paused:", *paused)
    per_fill = (trading[0]["TaskDuration"] - paused[0]["TaskDuration"]) / max(trading[1], 1e-9)
    print(f"  main-thread time per fill pushed: {1000 * per_fill:.1f} ms")
    per_fill = (trading[0]["BrowserCPU"] - paused[0]["BrowserCPU"]) / max(trading[1], 1e-9)
    print(f"  browser CPU (all its processes) per fill pushed: {1000 * per_fill:.1f} ms")
    dashboard = trading[0]["BrowserCPU"]
    print(
        f"Baseline, same run: a bare page changing one word {trading[1]:.1f} times/s: whole"
        f" browser {100 * bare:.0f} % of a core (the dashboard page trading:"
        f" {dashboard / max(bare, 1e-9):.1f}x that)"
    )
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "trading": {"per_s": trading[0], "fills_per_s": trading[1]},
        "paused": {"per_s": paused[0], "fills_per_s": paused[1]},
        "main_thread_s_per_fill": (trading[0]["TaskDuration"] - paused[0]["TaskDuration"])
        / max(trading[1], 1e-9),
        "browser_cpu_s_per_fill": per_fill,
        "baseline_bare_page_browser_cpu": bare,
        "dashboard_vs_bare": dashboard / max(bare, 1e-9),
    }


if __name__ == "__main__":
    main()
