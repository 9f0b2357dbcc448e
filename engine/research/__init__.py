"""Research tools over backtests: metrics, reports, optimization and walk-forward.

:mod:`engine.research.metrics` computes a run's performance figures with empyrical-reloaded
(daily returns of end-of-day equity, 252 periods a year, risk-free 0); :mod:`engine.research.report`
writes a standalone Bokeh HTML tearsheet from a backtest's result or from any run's event log.
"""
