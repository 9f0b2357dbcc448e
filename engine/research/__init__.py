"""Research tools over backtests: metrics, reports, optimization and walk-forward.

:mod:`engine.research.metrics` computes a run's performance figures with empyrical-reloaded
(daily returns of end-of-day equity, 252 periods a year, risk-free 0); :mod:`engine.research.report`
writes a standalone Bokeh HTML tearsheet from a backtest's result or from any run's event log.

A parameter search (``seamless optimize``) is :mod:`~engine.research.optimize` (the search loop)
over :mod:`~engine.research.optuna_study` (storage, sampler, study),
:mod:`~engine.research.pool` (worker processes, Ctrl-C, progress) and
:mod:`~engine.research.trials` (what a worker runs), with the space and objective of
:mod:`~engine.research.search`; :mod:`~engine.research.walkforward` and
:mod:`~engine.research.walkforward_report` build on it; :mod:`~engine.research.studies` keeps
the results.
"""
