"""One time axis in a replay: prices, fill markers and equity share the data's clock.

A real engine replays a CSV of one-minute bars (from 2000) on the data's clock while a
served dashboard is open in headless Chromium; the page's own chart data must put every fill
marker inside the price series' time range, and the equity curve in the same years, not at
today's wall-clock time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from testkit.dashboard import engine_config
from tests.panel_app.conftest import ServedDashboard

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
START = pd.Timestamp("2000-03-01 14:30", tz="UTC")


def minute_bars(path: Path, n: int = 3_000) -> None:
    rng = np.random.default_rng(5)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    opens = np.concatenate([[100.0], closes[:-1]])
    pd.DataFrame(
        {
            "timestamp": pd.date_range(START, periods=n, freq="1min"),
            "open": opens.round(4),
            "high": np.maximum(opens, closes).round(4) + 0.01,
            "low": np.minimum(opens, closes).round(4) - 0.01,
            "close": closes.round(4),
        }
    ).to_csv(path, index=False)


@pytest.fixture(scope="module")
def served_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDashboard]:
    from engine.config import parse_config
    from engine.kernel import Kernel, Mode
    from panel_app.services import release_services, services_for

    tmp = tmp_path_factory.mktemp("replay")
    minute_bars(tmp / "bars.csv")
    base = engine_config(tmp).to_dict()
    base["feed"] = {
        "kind": "csv",
        "path": str(tmp / "bars.csv"),
        "symbols": ["AAPL"],
        "speed": 1_200.0,  # 20 bars a second
        "loop": True,
    }
    kernel = Kernel.from_config(parse_config(base, env={})).start()
    assert kernel.mode == Mode.REPLAY
    services_for(kernel)
    dash = ServedDashboard(kernel)
    yield dash
    dash.stop()
    release_services(kernel)
    kernel.stop()


def chart_data(page: Any, name: str, column: str) -> list[float]:
    return list(
        page.evaluate(
            """([name, column]) => {
                const doc = Bokeh.documents[0];
                const source = doc.get_model_by_name(name);
                return source ? Array.from(source.data[column] || []) : [];
            }""",
            [name, column],
        )
    )


def test_fill_markers_lie_within_the_price_series_on_the_datas_clock(
    browser: Any, served_replay: ServedDashboard
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(served_replay.url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        page.locator("[data-testid=runner-status]").first.wait_for(timeout=TIMEOUT_MS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            markers = chart_data(page, "fill-markers", "t")
            prices = chart_data(page, "price-source", "t")
            if len(markers) >= 2 and len(prices) >= 5:
                break
            page.wait_for_timeout(250)
        equity = chart_data(page, "equity-source", "t")
    finally:
        context.close()

    assert len(markers) >= 2 and len(prices) >= 5, (markers, prices)
    assert min(prices) <= min(markers) and max(markers) <= max(prices)
    year = pd.Timestamp(max(prices), unit="ms").year
    assert year == 2000  # the data's clock, not the wall clock
    assert equity and pd.Timestamp(max(equity), unit="ms").year == 2000


def test_dragging_the_price_chart_back_loads_the_earlier_prices_from_the_log(
    browser: Any, served_replay: ServedDashboard
) -> None:
    time.sleep(2.0)  # the replay runs on: bars from before the page opens are in the log
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(served_replay.url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        chart = page.locator(".sl-price-chart").first
        chart.wait_for(timeout=TIMEOUT_MS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(chart_data(page, "price-source", "t")) < 10:
            page.wait_for_timeout(200)
        first_before = min(chart_data(page, "price-source", "t"))
        box = chart.bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, 11):  # a drag to the right shows earlier times
            page.mouse.move(x + 40 * step, y)
            page.wait_for_timeout(30)
        page.mouse.up()
        deadline = time.monotonic() + 15
        prices = chart_data(page, "price-source", "t")
        while time.monotonic() < deadline and min(prices) >= first_before:
            page.wait_for_timeout(200)
            prices = chart_data(page, "price-source", "t")
        markers = chart_data(page, "fill-markers", "t")
    finally:
        context.close()

    assert min(prices) < first_before, "no history loaded before the chart's first point"
    assert prices == sorted(prices)  # history in front, live points after it
    assert not markers or min(prices) <= min(markers) <= max(markers) <= max(prices)
    assert pd.Timestamp(min(prices), unit="ms").year == 2000
