"""The served dashboard in headless Chromium: push, notifications, controls, sessions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.events import DailyLossBreached, DataDropped, TradeExecuted

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
TIMEOUT_MS = 20_000


class Page:
    """A browser page on the dashboard that records console errors."""

    def __init__(self, browser: Any, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.external: list[str] = []
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith((url.rstrip("/"), "blob:", "data:"))
                else self.external.append(r.url)
            ),
        )
        start = time.monotonic()
        self.page.goto(url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        self.page.locator("[data-testid=runner-status]").first.wait_for(timeout=TIMEOUT_MS)
        self.load_s = time.monotonic() - start

    def _on_console(self, message: Any) -> None:
        # Every asset is served by the dashboard itself (no CDN, no web fonts): any console
        # error, a failed download included, fails the test.
        if message.type == "error":
            self.errors.append(message.text)
        elif message.type == "warning":
            self.warnings.append(message.text)

    def wait(self, selector: str, timeout: int = TIMEOUT_MS) -> Any:
        loc = self.page.locator(selector).first
        loc.wait_for(timeout=timeout)
        return loc

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any, served: Any) -> Iterator[Page]:
    p = Page(browser, served.url)
    yield p
    p.close()


def publish_trade(kernel: Any, fill_id: str, strategy: str = "probe") -> None:
    kernel.publish(
        TradeExecuted(
            fill_id=fill_id,
            order_id=f"o-{fill_id}",
            strategy=strategy,
            symbol="AAPL",
            side="buy",
            qty=1.0,
            price=101.25,
            ts_event=time.time_ns(),
        )
    )


def test_page_loads_without_console_errors(page: Page, served: Any) -> None:
    for testid in ("connection", "runner-status", "stale-badge", "heartbeat-age", "last-trade"):
        page.wait(f"[data-testid={testid}]")
    page.wait("[data-testid=runner-status][data-status=running]")
    page.page.wait_for_timeout(1500)  # let the throttled tier paint numbers and charts
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.errors == [], "\n".join(page.errors)
    assert page.warnings == [], "\n".join(page.warnings)
    assert page.external == [], f"assets fetched from elsewhere: {page.external}"


# -- a trader's layout --------------------------------------------------------------------------
def box(page: Page, selector: str) -> dict[str, float]:
    found = page.page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not laid out"
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_the_dashboard_fits_one_1440x900_screen(page: Page, served: Any) -> None:
    page.wait("[data-testid=runner-status][data-status=running]")
    page.page.wait_for_timeout(1500)

    parts = {
        "kpis": ".sl-indicators-pane",
        "price chart": ".sl-price-chart",
        "positions": ".sl-positions",
        "recent trades": ".sl-trades",
        "equity and drawdown": ".sl-equity-chart",
    }
    boxes = {name: box(page, selector) for name, selector in parts.items()}

    for name, found in boxes.items():
        assert found["y"] >= 0 and found["y"] + found["height"] <= 900, (name, found)
        assert found["x"] >= 0 and found["x"] + found["width"] <= 1440, (name, found)
    assert not overlap(boxes["recent trades"], boxes["equity and drawdown"])


def test_the_trade_columns_wait_behind_a_settings_toggle(page: Page, served: Any) -> None:
    chooser = page.page.locator(".sl-trade-columns").first
    page.wait(".sl-trade-settings")
    assert not chooser.is_visible()

    page.page.locator(".sl-trade-settings button").first.click(timeout=TIMEOUT_MS)

    chooser.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert chooser.get_by_text("fill_id").count() == 1


def test_at_most_three_toasts_show_and_never_over_the_trades_table(page: Page, served: Any) -> None:
    page.wait("[data-testid=runner-status][data-status=running]")
    for burst in range(6):  # one toast per drain: six drains
        publish_trade(served.kernel, f"burst{burst}_{uuid.uuid4().hex[:6]}-fill")
        page.page.wait_for_timeout(250)
    page.wait("[data-testid=toast-overflow]")

    toasts = page.page.locator("[data-testid=toast]")
    visible = [toasts.nth(i) for i in range(toasts.count()) if toasts.nth(i).is_visible()]
    trades = box(page, ".sl-trades")

    assert 1 <= len(visible) <= 3
    assert (
        int(
            page.page.locator("[data-testid=toast-overflow]").first.get_attribute("data-count") or 0
        )
        >= 1
    )
    for toast in visible:
        found = toast.bounding_box()
        assert found is not None and not overlap(found, trades)


def luminance(css_color: str) -> float:
    r, g, b = (int(v) for v in css_color[css_color.index("(") + 1 : -1].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_the_dark_theme_is_dark_and_its_text_readable(browser: Any, served: Any) -> None:
    from panel_app.prefs import UiPrefsStore

    UiPrefsStore(served.kernel.config.dashboard.prefs_dir).update("night", theme="dark")
    dark = Page(browser, served.url + "?user=night")
    try:
        dark.wait("[data-testid=runner-status][data-status=running]")
        dark.wait(".sl-trades td")
        background = dark.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        cell = dark.page.locator(".sl-table th").first.evaluate("e => getComputedStyle(e).color")
        tab = dark.page.locator(".bk-tab:not(.bk-active)").first.evaluate(
            "e => getComputedStyle(e).color"
        )
        dark.page.screenshot(path=str(SCREENSHOT.with_name("screenshot-dark.png")))
    finally:
        dark.close()

    assert luminance(background) < 0.25
    assert luminance(cell) > 0.6 and luminance(tab) > 0.6


def test_a_screenshot_of_every_tab_for_the_docs(browser: Any, served: Any) -> None:
    shots = Page(browser, served.url + "?user=shots")  # its own tab preference
    try:
        shots.wait("[data-testid=runner-status][data-status=running]")
        for tab in ("Controls", "Analytics", "Backtests"):
            shots.page.locator(".bk-tab", has_text=tab).first.click(timeout=TIMEOUT_MS)
            shots.page.wait_for_timeout(1_500)
            path = SCREENSHOT.with_name(f"screenshot-{tab.lower()}.png")
            shots.page.screenshot(path=str(path))
            assert path.stat().st_size > 10_000
    finally:
        shots.close()


def test_each_frame_is_drawn_in_one_render_pass(browser: Any, page: Page, served: Any) -> None:
    # A rounded clip around the charts' canvases (composited layers) makes the compositor draw
    # the whole card again through a mask, a second render pass, on every frame: 3 ms of a
    # page's CPU per update where compositing runs in software (docs/benchmarks.md).
    page.wait("[data-testid=runner-status][data-status=running]")
    page.page.wait_for_timeout(500)
    browser.start_tracing(page=page.page, categories=["viz", "benchmark"])
    for i in range(10):  # updates of our own, whatever the engine's strategy does meanwhile
        publish_trade(served.kernel, f"frames{i}_{uuid.uuid4().hex[:6]}-fill")
        page.page.wait_for_timeout(150)
    events = json.loads(browser.stop_tracing())["traceEvents"]

    def count(name: str) -> int:
        return sum(1 for e in events if e.get("name") == name and e.get("ph") == "X")

    frames = count("Display::DrawAndSwap")
    assert frames >= 5, "the page drew too few frames to tell"
    assert count("DirectRenderer::DrawRenderPass") == frames


def test_positions_table_has_one_row_per_symbol(page: Page, served: Any) -> None:
    headers = page.page.locator("[data-testid=positions] th")
    headers.first.wait_for(timeout=TIMEOUT_MS)
    titles = [t.strip() for t in headers.all_inner_texts()]
    assert titles == [
        "Symbol",
        "Qty",
        "Avg price",
        "Last",
        "Market value",
        "Unrealized P&L",
        "Realized P&L",
    ]
    # A fill of our own, so there is at least one position whatever the strategy did so far.
    publish_trade(served.kernel, f"positions_{uuid.uuid4().hex[:8]}-fill")
    served.kernel.bus.join(10)
    symbols = set(served.kernel.store.get_state("positions"))
    assert symbols
    rows = page.page.locator("[data-testid=positions] tbody tr[data-key]")
    for symbol in sorted(symbols):
        page.wait(f"[data-testid=positions] tbody tr[data-key={symbol!r}]")
    keys = {rows.nth(i).get_attribute("data-key") for i in range(rows.count())}
    assert symbols <= keys
    first_cells = {
        rows.nth(i).locator("td").first.inner_text().strip() for i in range(rows.count())
    }
    assert symbols <= first_cells


def test_indicators_show_the_engines_pnl(page: Page, served: Any) -> None:
    # The throttled tier replaces the tiles' text; wait for the page to show what the store
    # holds (the engine keeps trading, so compare with a fresh read until they agree).
    tile = page.wait("[data-testid=indicator-equity]")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    shown = stored = None
    while time.monotonic() < deadline:
        shown = float(tile.get_attribute("data-value") or "nan")
        stored = float(served.kernel.store.get_state("pnl")["equity"])
        if shown == pytest.approx(stored, abs=0.01) and stored != 0.0:
            break
        time.sleep(0.2)
    assert shown == pytest.approx(stored, abs=0.01)
    assert page.page.locator("[data-testid=indicator-equity] .sl-ind-value").inner_text() == (
        f"{shown:,.2f}"
    )
    for name in ("daily", "realized", "unrealized", "drawdown"):
        page.wait(f"[data-testid=indicator-{name}]")


def test_engine_trade_appears_and_notifies(page: Page, served: Any) -> None:
    # A name of its own, and the engine's own strategy paused: its trades' toasts (and a
    # position-closed toast, more severe) would be merged into the same toast, which shows
    # the newest few messages and counts the rest, so this one could be among those counted.
    kernel = served.kernel
    kernel.command("pause", "engine")
    try:
        page.wait("[data-testid=runner-status][data-status=paused]")
        time.sleep(0.5)  # an order accepted just before the pause may still fill
        strategy = f"probe_{uuid.uuid4().hex[:8]}"
        publish_trade(kernel, f"{strategy}-fill", strategy)
        toast = page.page.locator(
            ".sl-toasts, .sl-toast", has_text=f"Trade BUY 1 AAPL @ 101.25 ({strategy})"
        )
        toast.first.wait_for(timeout=TIMEOUT_MS)
        page.page.get_by_text(strategy).first.wait_for(timeout=TIMEOUT_MS)
    finally:
        kernel.command("resume", "engine")
        page.wait("[data-testid=runner-status][data-status=running]")


def test_the_newest_fill_is_the_first_row_of_the_recent_trades_table(
    page: Page, served: Any
) -> None:
    from panel_app.facade import dashboard_config

    kernel = served.kernel
    rollover = dashboard_config(kernel).recent_trades_rollover
    kernel.command("pause", "engine")  # only this test's fills, in this order
    try:
        page.wait("[data-testid=runner-status][data-status=paused]")
        time.sleep(0.5)  # an order accepted just before the pause may still fill
        names = [f"row{i}_{uuid.uuid4().hex[:6]}" for i in range(30)]  # more than the table keeps
        fill_ids = [f"{name}-fill" for name in names]
        for name, fill_id in zip(names, fill_ids, strict=True):
            publish_trade(kernel, fill_id, name)
        table = page.page.locator("[data-testid=recent-trades]").first
        rows = page.page.locator("[data-testid=recent-trades] tbody tr[data-key]")
        newest = page.page.locator(f'[data-testid=recent-trades] tr[data-key="{fill_ids[-1]}"]')
        newest.wait_for(timeout=TIMEOUT_MS)
        assert newest.is_visible()
        assert names[-1] in newest.inner_text()
        count = rows.count()
        assert min(rollover, len(fill_ids)) <= count <= rollover  # the tape is full, capped
        assert int(table.get_attribute("data-rows") or -1) == count
        keys = [rows.nth(i).get_attribute("data-key") for i in range(count)]
        # Newest first. A fill of the engine's own strategy that was already on its way when
        # it paused may land among them: compare this test's fills only.
        ours = [k for k in keys if k in fill_ids]
        assert ours == fill_ids[::-1][: len(ours)]
        assert keys.index(fill_ids[-1]) <= 1
    finally:
        kernel.command("resume", "engine")
        page.wait("[data-testid=runner-status][data-status=running]")


def test_daily_loss_breach_shows_and_stays(page: Page, served: Any) -> None:
    served.kernel.publish(
        DailyLossBreached(daily_pnl=-6_000.0, limit=5_000.0, action="halt", ts_event=time.time_ns())
    )
    toast = page.page.get_by_text("Daily loss limit breached").first
    toast.wait_for(timeout=TIMEOUT_MS)
    page.page.wait_for_timeout(5_000)  # longer than any ordinary toast lives
    assert toast.is_visible()


def test_dropped_market_data_is_shown_on_the_status_line_and_notified(
    page: Page, served: Any
) -> None:
    served.kernel.publish(
        DataDropped(
            source="websocket",
            count=42,
            total=1_042,
            by_symbol={"AAPL": 42},
            ts_event=time.time_ns(),
        )
    )

    page.wait("[data-testid=data-dropped][data-count='1042']")
    page.page.get_by_text("Market data dropped: 42 events from websocket").first.wait_for(
        timeout=TIMEOUT_MS
    )
    assert "1,042" in page.page.locator("[data-testid=data-dropped]").first.text_content()


def test_operator_can_pause_and_resume(page: Page, served: Any) -> None:
    page.page.locator(".bk-tab", has_text="Controls").first.click(timeout=TIMEOUT_MS)
    page.page.locator(".sl-cmd-pause button").first.click(timeout=TIMEOUT_MS)
    page.wait("[data-testid=runner-status][data-status=paused]")
    assert served.kernel.runner.status == "paused"
    page.page.locator(".sl-cmd-resume button").first.click(timeout=TIMEOUT_MS)
    page.wait("[data-testid=runner-status][data-status=running]")
    assert served.kernel.runner.status == "running"
    page.page.locator(".bk-tab", has_text="Dashboard").first.click(timeout=TIMEOUT_MS)


def test_two_sessions_agree(browser: Any, served: Any) -> None:
    kernel = served.kernel
    a, b = Page(browser, served.url), Page(browser, served.url)
    # The test engine's own strategy trades too: under load its fills share a push with this
    # one, take the last-trade badge, crowd the merged toast and push this row below the
    # trade table's visible rows. Pause it, so this fill is the newest on both pages.
    kernel.command("pause", "engine")
    try:
        for p in (a, b):
            p.wait("[data-testid=runner-status][data-status=paused]")
        time.sleep(0.5)  # an order accepted just before the pause may still fill
        strategy = f"both_{uuid.uuid4().hex[:8]}"
        publish_trade(kernel, f"{strategy}-fill", strategy)
        for p in (a, b):
            p.page.get_by_text(strategy).first.wait_for(timeout=TIMEOUT_MS)
    finally:
        kernel.command("resume", "engine")
        try:
            for p in (a, b):
                p.wait("[data-testid=runner-status][data-status=running]")
        finally:
            a.close()
            b.close()


def test_closing_sessions_leaves_no_subscriptions(browser: Any, served: Any) -> None:
    kernel = served.kernel

    def counts() -> tuple[int, int]:
        return kernel.bus.subscriber_count(), kernel.store.subscription_count

    # Sessions of earlier tests are destroyed ~2-2.5 s after their pages closed (later on a
    # busy machine): wait until the counts have been steady for well over that.
    before, steady_since = counts(), time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() - steady_since < 6.0 and time.monotonic() < deadline:
        time.sleep(0.2)
        if counts() != before:
            before, steady_since = counts(), time.monotonic()
    pages = [Page(browser, served.url) for _ in range(3)]
    assert kernel.bus.subscriber_count() > before[0]
    for p in pages:
        p.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = (kernel.bus.subscriber_count(), kernel.store.subscription_count)
        if now == before:
            break
        time.sleep(0.2)
    assert (kernel.bus.subscriber_count(), kernel.store.subscription_count) == before


def test_a_viewer_sees_no_working_controls(browser: Any, served: Any) -> None:
    viewer = Page(browser, served.url + "?user=viewer")
    try:
        viewer.page.locator(".bk-tab", has_text="Controls").first.click(timeout=TIMEOUT_MS)
        pause = viewer.page.locator(".sl-cmd-pause button").first
        pause.wait_for(timeout=TIMEOUT_MS)
        assert pause.is_disabled()
        status = served.kernel.runner.status
        pause.click(force=True, timeout=TIMEOUT_MS)  # a click on the disabled button
        time.sleep(1.0)
        assert served.kernel.runner.status == status
    finally:
        viewer.close()


def test_a_forged_control_message_from_a_viewer_session_is_refused(served: Any) -> None:
    """What a hand-crafted widget event from a viewer's browser does on the server: Panel sets
    the button's ``clicks``, which runs the handler; the handler re-checks the role."""
    from panel_app.app import create_session

    session = create_session(served.kernel, "viewer", "viewer")
    status = served.kernel.runner.status
    before = served.kernel.log.count(types=["command_issued"])
    try:
        session.controls.buttons["pause"].clicks += 1  # the forged click reaches the server
        served.kernel.bus.join(5)
    finally:
        session.dispose()
    assert session.controls.refused == 1
    assert session.controls.sent == []
    assert served.kernel.runner.status == status
    assert served.kernel.log.count(types=["command_issued"]) == before
