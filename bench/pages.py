"""Headless dashboard pages that time the fills they show: the browser side of the
``ui_latency``, ``load`` and ``page_cost`` benchmarks (a helper module, not a benchmark).

:data:`PROBE` runs in each page and records, in the page's own clock, when each fill id first
shows on the ``last-trade`` badge or in the newest rows of the recent-trades table; the bench
publishes probe fills with known ids (:func:`publish_probe`) and reads the times back
(:func:`wait_seen` one fill at a time, :func:`latencies_seen` all at the end). Pages are opened
here or, for ``load --browsers-process``, driven from a child process (:func:`start_pages`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Callable
from typing import Any

from testkit.access_server import PASSWORDS, Client
from testkit.dashboard import launch_browser

PROBE = """
() => {
  // Record when each fill id first appears on the last-trade badge. The badge lives in a
  // shadow root (which a MutationObserver on the body does not see into): find that root
  // once, observe it, and re-find it if the pane is re-rendered. No animation-frame polling
  // (ten pages polling every frame would eat the CPU the server needs).
  window.__seen = {};
  let root = null, observer = null, table = null, tableObserver = null;
  const find = (node) => {
    if (node.querySelector('[data-testid=last-trade]')) return node;
    for (const el of node.querySelectorAll('*')) {
      if (el.shadowRoot) { const r = find(el.shadowRoot); if (r) return r; }
    }
    return null;
  };
  const mark = (fill, now) => { if (fill && !(fill in window.__seen)) window.__seen[fill] = now; };
  const check = () => {
    const el = root && root.querySelector('[data-testid=last-trade]');
    if (!el) return false;
    const now = Date.now();
    mark(el.getAttribute('data-fill'), now);
    // A fill that shares its push with a later one is not on the badge: find it in the
    // newest rows of the recent-trades table (another shadow root, found once).
    if (!table || !table.isConnected) table = findTable(document);
    if (table) {
      const rows = table.querySelectorAll('tbody tr[data-key]');
      const n = Math.min(rows.length, 5);
      for (let i = 0; i < n; i++) mark(rows[i].getAttribute('data-key'), now);
    }
    return true;
  };
  const findTable = (node) => {
    const t = node.querySelector('[data-testid=recent-trades]');
    if (t) return t;
    for (const el of node.querySelectorAll('*')) {
      if (el.shadowRoot) { const r = findTable(el.shadowRoot); if (r) return r; }
    }
    return null;
  };
  const attach = () => {
    if (root && check() && table && table.isConnected) return;
    if (observer) observer.disconnect();
    if (tableObserver) tableObserver.disconnect();
    root = find(document);
    if (!root) return;
    observer = new MutationObserver(check);
    observer.observe(root, {subtree: true, childList: true, attributes: true,
                            characterData: true});
    table = findTable(document);
    if (table) {
      tableObserver = new MutationObserver(check);
      tableObserver.observe(table.getRootNode(), {subtree: true, childList: true});
    }
    check();
  };
  attach();
  setInterval(attach, 200);
}
"""


def publish_probe(kernel: Any, prefix: str, i: int) -> tuple[str, float]:
    """Publish a probe fill with a unique id; returns the id and the wall time (ms) it left."""
    from streams.events import TradeExecuted

    fill = f"{prefix}-{uuid.uuid4().hex[:10]}"
    sent_ms = time.time() * 1000
    kernel.publish(
        TradeExecuted(
            fill_id=fill,
            order_id=f"o{i}",
            strategy="bench",
            symbol="AAPL",
            side="buy" if i % 2 == 0 else "sell",
            qty=1.0,
            price=100.0,
            ts_event=time.time_ns(),
        )
    )
    return fill, sent_ms


def open_page(browser: Any, url: str) -> tuple[Any, Any, float]:
    """A new browser context on the dashboard; returns (context, page, seconds to content)."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    start = time.monotonic()
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.locator("[data-testid=last-trade]").first.wait_for(timeout=60_000)
    return ctx, page, time.monotonic() - start


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


def publish_probes(kernel: Any, until: float, sent: dict[str, float], interval_s: float) -> None:
    """Publish a bench fill every ``interval_s`` until ``until`` (publish wall times, ms, go
    in ``sent``), whether or not the pages keep up."""
    while time.monotonic() < until:
        fill, sent_ms = publish_probe(kernel, "load", len(sent))
        sent[fill] = sent_ms
        time.sleep(interval_s)


def wait_seen(
    pages: list[Any],
    fill: str,
    sent_ms: float,
    timeout_s: float,
    poll_s: float,
    latencies: list[float],
) -> int:
    """Wait until every page has seen ``fill``, adding each page's latency (ms) to
    ``latencies``; returns how many pages missed it within ``timeout_s``.

    The times are taken in the pages; polling here only finds out when to go on. Poll gently:
    the Playwright driver runs in this process and competes with the server's event loop for
    the GIL (every evaluate is a round trip through it)."""
    deadline = time.monotonic() + timeout_s
    pending = list(pages)
    while pending and time.monotonic() < deadline:
        time.sleep(poll_s)
        still = []
        for page in pending:
            seen = page.evaluate(f"() => window.__seen['{fill}'] || null")
            if seen is None:
                still.append(page)
            else:
                latencies.append(seen - sent_ms)
        pending = still
    return len(pending)


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
