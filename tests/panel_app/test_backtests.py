"""The Backtests tab: a finished run's card shows the library's metrics, and its Report button
shows the same standalone report ``seamless report`` writes, in an iframe above the results."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import panel as pn

from engine.backtest import run_backtest
from engine.research.metrics import METRIC_KEYS, json_ready
from engine.research.report import SECTIONS
from panel_app.backtests import BacktestManager
from panel_app.push import SessionBridge
from panel_app.views.backtests import BacktestsView
from tests.engine.test_metrics import hourly_bars
from tests.engine.test_report import Page


def runner(strategy: str, symbol: str, params: dict[str, Any], progress: Any) -> Any:
    return run_backtest(hourly_bars(40), strategy=strategy, symbol=symbol, params=params)


def wait_for(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def htmls(viewable: Any, css_class: str) -> list[pn.pane.HTML]:
    return [pane for pane in viewable.select(pn.pane.HTML) if css_class in (pane.css_classes or [])]


def test_a_result_card_shows_the_metrics_and_its_report_above() -> None:
    manager = BacktestManager(runner=runner)
    view = BacktestsView(manager, SessionBridge(None))  # no document: updates apply at once
    try:
        view.start()
        wait_for(lambda: len(view.results.objects) == 1)
        result = manager.results[0]

        (table,) = htmls(view.results, "sl-backtest-metrics")
        rows = Page(table.object).cells["sl-metrics"]

        assert not result.error, result.error
        assert result.metrics == json_ready(result.source.metrics)
        assert [row[0] for row in rows][:3] == ["Total return", "CAGR", "Sharpe"]
        assert len(rows) == len(METRIC_KEYS)

        view.show_report(result)
        wait_for(lambda: bool(htmls(view.report, "sl-backtest-report-frame")))
        (frame,) = htmls(view.report, "sl-backtest-report-frame")
        source = frame.object.split('srcdoc="', 1)[1].split('" style=', 1)[0]
        page = Page(html.unescape(source))

        assert page.ids == list(SECTIONS) and page.loaded == []
        assert result.report and manager.report(result).result() == result.report  # kept
    finally:
        manager.shutdown()
