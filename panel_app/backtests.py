"""Backtests from the page: run in a background thread, never touching the live engine.

:class:`BacktestManager` runs ``engine.backtest.run_backtest`` (its own clock, bus and
in-memory journal) on a worker thread, reports progress through a callback, keeps finished
results for side-by-side comparison and caches them by (strategy, params) for a TTL. It also
builds a result's standalone HTML report (``engine.research.report``, what ``seamless report``
writes) on a worker thread, once per result.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Progress = Callable[[float], None]
Runner = Callable[..., Any]


@dataclasses.dataclass
class BacktestResult:
    """One finished (or failed) backtest, normalised for display."""

    run_id: int
    strategy: str
    symbol: str
    params: dict[str, Any]
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The library's metrics (``summary()["metrics"]``; ``None`` where a figure is undefined).
    metrics: dict[str, float | None] = dataclasses.field(default_factory=dict)
    equity: list[tuple[Any, float]] = dataclasses.field(default_factory=list)
    trades: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    cached: bool = False
    #: The engine's result, kept to build its report on demand.
    source: Any = dataclasses.field(default=None, repr=False, compare=False)
    #: The report's HTML once built (shared by the sessions showing this result).
    report: str = dataclasses.field(default="", repr=False, compare=False)

    @property
    def label(self) -> str:
        """Short name for a result card."""
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"#{self.run_id} {self.strategy} {self.symbol} ({args})"


def _default_runner(strategy: str, symbol: str, params: dict[str, Any], progress: Progress) -> Any:
    """Run ``engine.backtest.run_backtest`` on the bundled sample bars of ``symbol``."""
    from panel_app.facade import run_backtest
    from streams.sources.sample_data import load_sample_bars

    def on_progress(done: int, total: int) -> None:
        progress(done / total if total else 1.0)

    return run_backtest(
        load_sample_bars(symbol),
        strategy=strategy,
        symbol=symbol,
        params=params,
        progress=on_progress,
        progress_every=100,
    )


def _normalise(raw: Any, result: BacktestResult) -> None:
    """Fill ``result`` from an ``engine.backtest.BacktestResult``."""
    result.stats = dict(raw.summary()) if hasattr(raw, "summary") else {}
    result.metrics = dict(result.stats.pop("metrics", None) or {})
    result.source = raw
    result.equity = [(ts, float(eq)) for ts, eq in getattr(raw, "equity_curve", ())]
    result.trades = [dict(t) for t in getattr(raw, "trades", ())]


class BacktestManager:
    """Runs backtests on worker threads and keeps their results (shared by sessions)."""

    def __init__(
        self, *, ttl_s: float = 300.0, runner: Runner | None = None, max_workers: int = 2
    ) -> None:
        self.ttl_s = ttl_s
        self._runner = runner
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="backtest")
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._cache: dict[str, tuple[float, BacktestResult]] = {}
        self.results: list[BacktestResult] = []

    def submit(
        self, strategy: str, symbol: str, params: Mapping[str, Any], progress: Progress
    ) -> Future[BacktestResult]:
        """Run (or fetch from cache) a backtest; ``progress(fraction)`` from the worker thread."""
        key = json.dumps([strategy, symbol, dict(params)], sort_keys=True, default=str)
        with self._lock:
            found = self._cache.get(key)
            if found is not None and found[0] > time.monotonic():
                done: Future[BacktestResult] = Future()
                cached = dataclasses.replace(found[1], cached=True)
                done.set_result(cached)
                progress(1.0)
                return done
        return self._pool.submit(self._run, key, strategy, symbol, dict(params), progress)

    def _run(
        self, key: str, strategy: str, symbol: str, params: dict[str, Any], progress: Progress
    ) -> BacktestResult:
        result = BacktestResult(
            run_id=next(self._ids), strategy=strategy, symbol=symbol, params=params
        )
        start = time.perf_counter()
        try:
            runner = self._runner or _default_runner
            progress(0.0)
            _normalise(runner(strategy, symbol, params, progress), result)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - start
        progress(1.0)
        with self._lock:
            self.results.append(result)
            if not result.error:
                self._cache[key] = (time.monotonic() + self.ttl_s, result)
        return result

    def report(self, result: BacktestResult) -> Future[str]:
        """The standalone HTML report of ``result`` (built on a worker thread, then kept)."""
        if result.report or result.source is None:
            done: Future[str] = Future()
            if result.report:
                done.set_result(result.report)
            else:
                done.set_exception(ValueError(f"backtest {result.label} has no result to report"))
            return done
        return self._pool.submit(self._build_report, result)

    @staticmethod
    def _build_report(result: BacktestResult) -> str:
        from panel_app.facade import report_html

        result.report = report_html(result.source)
        return result.report

    def shutdown(self) -> None:
        """Stop the worker threads (queued runs are cancelled)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
