"""The Backtests tab: run a strategy with chosen parameters on the bundled sample bars.

Runs happen on the shared :class:`~panel_app.backtests.BacktestManager`'s worker threads with
their own clock, bus and journal, so the live engine is never disturbed. Progress and results
come back through the session's bridge; finished results are listed side by side, each with its
figures and the library's metrics (docs/strategies.md, "Metrics"). A result's "Report" button
shows its standalone HTML report (the one ``seamless report`` writes) above the results, in an
iframe, with a button to download it.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn
from bokeh.plotting import figure

from panel_app.backtests import BacktestManager, BacktestResult
from panel_app.facade import METRIC_KEYS, METRIC_LABELS, format_metric, resolve_strategy_class
from panel_app.push import SessionBridge
from panel_app.toasts import notify
from panel_app.views.controls import _editable

STRATEGIES = ("sma_crossover", "zscore")
SYMBOLS = ("AAPL", "MSFT", "GOOG", "IBM")


class BacktestsView(pn.viewable.Viewer):
    """Backtest launcher and side-by-side results for one session."""

    def __init__(self, manager: BacktestManager, bridge: SessionBridge, **params: Any) -> None:
        super().__init__(**params)
        self.manager = manager
        self.bridge = bridge
        self.strategy = pn.widgets.Select(label="Strategy", options=list(STRATEGIES), width=180)
        self.symbol = pn.widgets.Select(label="Symbol", options=list(SYMBOLS), width=120)
        self.params_box = pn.Column()
        self.run = pn.widgets.Button(
            label="Run backtest", color="primary", css_classes=["sl-run-backtest"]
        )
        self.progress = pn.indicators.Progress(value=0, max=100, width=300, visible=False)
        self.results = pn.Row(sizing_mode="stretch_width", css_classes=["sl-backtest-results"])
        self.report = pn.Column(sizing_mode="stretch_width", css_classes=["sl-backtest-report"])
        self.strategy.param.watch(lambda _e: self._show_params(), "value")
        self.run.on_click(lambda _e: self.start())
        self._draft: Any = None
        self._show_params()
        self._layout = pn.Column(
            pn.Row(self.strategy, self.symbol, self.params_box, self.run, self.progress),
            self.report,
            self.results,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _show_params(self) -> None:
        cls = resolve_strategy_class(self.strategy.value)
        self._draft = cls()
        fields = _editable(self._draft)
        self.params_box.objects = [
            pn.Param(self._draft, parameters=fields, show_name=False) if fields else ""
        ]

    def start(self) -> None:
        """Submit a run with the current choices (session loop)."""
        params = {f: getattr(self._draft, f) for f in _editable(self._draft)}
        self.run.disabled = True
        self.progress.visible = True
        self.progress.value = 0

        def on_progress(fraction: float) -> None:
            value = int(max(0.0, min(1.0, fraction)) * 100)
            self.bridge.post(lambda: setattr(self.progress, "value", value), key="bt-progress")

        future = self.manager.submit(self.strategy.value, self.symbol.value, params, on_progress)
        future.add_done_callback(lambda f: self.bridge.post(lambda: self._finished(f.result())))

    def _finished(self, result: BacktestResult) -> None:
        self.run.disabled = False
        self.progress.visible = False
        if result.error:
            notify("error", f"Backtest failed: {result.error}")
        self.results.append(result_card(result, on_report=self.show_report))

    def show_report(self, result: BacktestResult) -> None:
        """Build ``result``'s report off the session's loop, then show it (session loop)."""
        self.report.objects = [pn.pane.Markdown(f"Building the report of {result.label}...")]
        future = self.manager.report(result)

        def shown(done: Any) -> None:
            error = done.exception()
            if error is not None:
                self.bridge.post(lambda: self._report_failed(result, error))
            else:
                self.bridge.post(lambda: self._show_report(result, done.result()))

        future.add_done_callback(shown)

    def _report_failed(self, result: BacktestResult, error: BaseException) -> None:
        self.report.objects = []
        notify("error", f"Report of {result.label} failed: {error}")

    def _show_report(self, result: BacktestResult, page: str) -> None:
        close = pn.widgets.Button(label="Close", width=80, css_classes=["sl-close-report"])
        close.on_click(lambda _e: setattr(self.report, "objects", []))
        download = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(page.encode("utf-8")),
            filename=f"backtest-{result.run_id}.html",
            label="Download report",
            color="primary",
            width=180,
        )
        self.report.objects = [
            pn.Row(pn.pane.Markdown(f"### Report {result.label}"), download, close),
            report_frame(page),
        ]


def report_frame(page: str) -> pn.pane.HTML:
    """A standalone HTML page shown in a sandboxed iframe (scripts run, no access to the
    dashboard's page)."""
    return pn.pane.HTML(
        f'<iframe class="sl-report-frame" sandbox="allow-scripts" srcdoc="{html.escape(page)}" '
        'style="width: 100%; height: 900px; border: 0;"></iframe>',
        sizing_mode="stretch_width",
        css_classes=["sl-backtest-report-frame"],
    )


def metrics_table(metrics: dict[str, float | None]) -> pn.pane.HTML:
    """The library's metrics as a small HTML table (``n/a`` where undefined)."""
    rows = "".join(
        f'<tr data-metric="{key}"><th style="text-align: left; font-weight: normal;">'
        f"{METRIC_LABELS[key]}</th>"
        f'<td style="text-align: right;">{format_metric(key, metrics.get(key))}</td></tr>'
        for key in METRIC_KEYS
    )
    return pn.pane.HTML(
        f'<table class="sl-metrics">{rows}</table>', width=360, css_classes=["sl-backtest-metrics"]
    )


def result_card(
    result: BacktestResult, on_report: Callable[[BacktestResult], None] | None = None
) -> pn.Card:
    """A card with a result's statistics, metrics and equity curve; with ``on_report``, a
    "Report" button that calls it with the result."""
    fig = figure(height=200, width=360, x_axis_type="datetime", tools="pan,wheel_zoom,reset")
    if result.equity:
        fig.line(
            [pd.Timestamp(ts, unit="ns") for ts, _ in result.equity],
            [eq for _, eq in result.equity],
            line_width=2,
        )
    keys = ("fills", "round_trips", "net_pnl", "final_equity", "max_drawdown")
    stats = pd.DataFrame(
        [{"stat": k, "value": result.stats.get(k)} for k in keys if k in result.stats]
    )
    body: list[Any] = [pn.pane.Bokeh(fig)]
    if result.error:
        body.append(pn.pane.Alert(result.error, alert_type="danger"))
    else:
        if on_report is not None:
            button = pn.widgets.Button(
                label="Report", width=120, css_classes=["sl-backtest-report-button"]
            )
            button.on_click(lambda _e: on_report(result))
            body.append(button)
        body.append(pn.widgets.Tabulator(stats, show_index=False, disabled=True, width=360))
        body.append(metrics_table(result.metrics))
    suffix = " (cached)" if result.cached else f" ({result.seconds:.1f} s)"
    return pn.Card(*body, title=result.label + suffix, width=390)
