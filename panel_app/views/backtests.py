"""The Backtests tab: run a strategy with chosen parameters on the bundled sample bars.

Runs happen on the shared :class:`~panel_app.backtests.BacktestManager`'s worker threads with
their own clock, bus and journal, so the live engine is never disturbed. Progress and results
come back through the session's bridge; finished results are listed side by side.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
from bokeh.plotting import figure

from engine.strategy_host import resolve_strategy_class
from panel_app.backtests import BacktestManager, BacktestResult
from panel_app.push import SessionBridge
from panel_app.views.controls import _editable
from panel_app.views.dashboard import notify

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
        self.strategy.param.watch(lambda _e: self._show_params(), "value")
        self.run.on_click(lambda _e: self.start())
        self._draft: Any = None
        self._show_params()
        self._layout = pn.Column(
            pn.Row(self.strategy, self.symbol, self.params_box, self.run, self.progress),
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
        self.results.append(result_card(result))


def result_card(result: BacktestResult) -> pn.Card:
    """A card with a result's statistics and equity curve."""
    fig = figure(height=200, width=360, x_axis_type="datetime", tools="pan,wheel_zoom,reset")
    if result.equity:
        fig.line(
            [pd.Timestamp(ts, unit="ns") for ts, _ in result.equity],
            [eq for _, eq in result.equity],
            line_width=2,
        )
    keys = ("fills", "round_trips", "net_pnl", "final_equity", "max_drawdown", "sharpe")
    stats = pd.DataFrame(
        [{"stat": k, "value": result.stats.get(k)} for k in keys if k in result.stats]
    )
    body: list[Any] = [pn.pane.Bokeh(fig)]
    body.append(
        pn.pane.Alert(result.error, alert_type="danger")
        if result.error
        else pn.widgets.Tabulator(stats, show_index=False, disabled=True, width=360)
    )
    suffix = " (cached)" if result.cached else f" ({result.seconds:.1f} s)"
    return pn.Card(*body, title=result.label + suffix, width=390)
