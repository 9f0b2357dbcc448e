"""Time travel in a served dashboard (headless Chromium): what the param-level test cannot
show. In a served session the slider's debounce runs on the session's Tornado loop, and the
restore's result comes back through the real bridge; the page must show the state as of the
seq typed in, and keyboard steps on the slider must start one restore, not one per step."""

from __future__ import annotations

import time
from typing import Any

import pytest

from panel_app.services import services_for
from tests.panel_app.test_dashboard_browser import TIMEOUT_MS, Page

pytestmark = pytest.mark.browser


def shown_seq(page: Page) -> int:
    readout = page.wait("[data-testid=tt-readout][data-seq]")
    return int(readout.get_attribute("data-seq") or -1)


def wait_seq(page: Page, seq: int) -> None:
    page.wait(f'[data-testid=tt-readout][data-seq="{seq}"]')


def test_time_travel_shows_the_state_as_of_the_chosen_seq(browser: Any, served: Any) -> None:
    kernel = served.kernel
    history = services_for(kernel).history
    assert kernel.bus.join(10)
    page = Page(browser, served.url)
    try:
        page.page.locator(".bk-tab", has_text="Analytics").first.click(timeout=TIMEOUT_MS)
        page.wait("[data-testid=tt-readout]")
        box = page.wait(".sl-tt-seq input")
        end = int(box.input_value())
        assert end > 20

        target = end // 2
        box.fill(str(target))
        box.press("Enter")
        wait_seq(page, target)
        expected = kernel.state_at(target)
        cash = expected["state"]["account"]["cash"]
        summary = page.wait("[data-testid=tt-summary]")
        assert f"{cash:,.2f}" in summary.inner_text()
        for symbol, position in expected["state"]["positions"].items():
            if position["qty"]:
                page.wait(f'[data-testid=tt-positions] tr[data-key="{symbol}"]')

        # Ten keyboard steps on the slider in one go (a drag's worth of value changes, each
        # sent to the server): one restore, of the seq the slider ends on.
        before = history.restores
        handle = page.wait(".sl-tt-slider .noUi-handle")
        handle.evaluate(
            """h => { for (let i = 0; i < 10; i++) h.dispatchEvent(new KeyboardEvent(
                   'keydown', {key: 'ArrowLeft', bubbles: true})) }"""
        )
        wait_seq(page, target - 10)
        assert int(box.input_value()) == target - 10
        time.sleep(0.5)  # nothing else comes
        # One restore; two if a loaded machine spread the burst over more than the debounce.
        assert before + 1 <= history.restores <= before + 2
        assert page.errors == [], "\n".join(page.errors)
    finally:
        page.close()
