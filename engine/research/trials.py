"""The worker side of a parameter search: one parsed table, many full-engine backtests.

Each worker process parses the market data once (:func:`load_table`) and then runs trial after
trial: a :func:`~engine.backtest.run_backtest` (the whole engine, in-memory log) over a
:class:`TableWindow` of the parsed rows, with the trial's parameters. A trial returns plain,
picklable data: the objective's value, the run's summary figures and timings; with
``detail`` also the figures of a counted window (walk-forward).

Optuna is not imported here; neither is anything of the parent's (the workers start fast).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import signal
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from engine.research.search import Objective
from streams.errors import ConfigError, SeamlessError
from streams.sources import ReplayTable, load_replay_table

if TYPE_CHECKING:
    from engine.backtest import BacktestResult
    from engine.config import SeamlessConfig
    from engine.portfolio import RoundTrip
    from streams.events import Event


@dataclasses.dataclass(frozen=True)
class RunSetup:
    """What every trial of a search shares (sent once to each worker)."""

    data: str  # a CSV/Parquet path, or "sample" (the bundled bars of ``symbol``)
    symbol: str
    strategy: str
    fixed: dict[str, Any]
    objective: Objective
    config: SeamlessConfig | None = None
    starting_cash: float | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """One backtest: ``params`` (on top of the setup's fixed ones) over rows
    ``[start, stop)`` of the table. With ``detail``, the figures of the rows from
    ``count_from`` on are returned too (the earlier rows only warm the strategy up)."""

    params: dict[str, Any]
    start: int = 0
    stop: int | None = None
    count_from: int | None = None
    detail: bool = False


def load_table(data: str, symbol: str) -> ReplayTable:
    """Parse ``--data`` once: a CSV/Parquet path, or ``sample`` for the bundled daily bars of
    ``symbol``. ConfigError naming ``--data`` for a missing file or column."""
    if data == "sample":
        from streams.sources import load_sample_bars

        frame: Any = load_sample_bars(symbol)
    else:
        frame = data
    try:
        return load_replay_table(frame, kind="bars", symbol=symbol.upper())
    except ConfigError as exc:
        raise ConfigError(f"--data {data!r}: {exc}") from exc


class TableWindow(ReplayTable):
    """Rows ``[start, stop)`` of a parsed table, replayed as a table of their own (no copy,
    no re-parse). Nothing after ``stop`` is ever read."""

    def __init__(self, table: ReplayTable, start: int = 0, stop: int | None = None) -> None:
        stop = table.count if stop is None else stop
        if not 0 <= start <= stop <= table.count:
            raise ValueError(f"rows [{start}, {stop}) are not within the table's {table.count}")
        self.base = table
        self.start = start
        self.stop = stop
        self.kind = table.kind
        self.count = stop - start
        self.ts = table.ts
        valid = [v for v in table.ts.values[start:stop] if v is not None]
        self.first_ts = min(valid) if valid else None
        self.last_ts = max(valid) if valid else None
        self.step_ns = getattr(table, "step_ns", 0)

    def __getattr__(self, name: str) -> Any:  # interval_s and the like: the base table's
        return getattr(self.base, name)

    def events(self, *, start_row: int = 0, **options: Any) -> Iterator[Event]:
        """The window's rows as events (row ``start_row`` of the window first); ``options``
        (``source``, ``offset_ns``, ``clock``) are handed to the base table's as they are."""
        rows = self.count - start_row
        if rows <= 0:
            return
        events = self.base.events(start_row=self.start + start_row, **options)
        for done, event in enumerate(events, 1):
            yield event
            if done >= rows:
                return  # stop the base generator: the rows after the window stay unread

    def first_row_after(self, ts_ns: int, offset_ns: int = 0) -> int:
        values = self.base.ts.values
        for row in range(self.start, self.stop):
            value = values[row]
            if value is not None and value + offset_ns > ts_ns:
                return row - self.start
        return self.count


def row_ts(table: ReplayTable, row: int, *, forward: bool = True) -> int:
    """The timestamp (ns) of ``row``, or of the nearest row with a valid one (later rows if
    ``forward``, else earlier); ConfigError when there is none."""
    values = table.ts.values
    rows = range(row, table.count) if forward else range(row, -1, -1)
    for r in rows:
        value = values[r]
        if value is not None:
            return int(value)
    raise ConfigError(f"no row with a valid timestamp {'from' if forward else 'up to'} row {row}")


def run_task(setup: RunSetup, table: ReplayTable, task: Task) -> dict[str, Any]:
    """Run one trial's backtest; plain data back (never raises for a bad trial: ``error``)."""
    from engine.backtest import run_backtest

    started = time.time()
    cpu = time.process_time()
    window = TableWindow(table, task.start, task.stop)
    try:
        result = run_backtest(
            window,
            strategy=setup.strategy,
            symbol=setup.symbol,
            params={**setup.fixed, **task.params},
            config=setup.config,
            starting_cash=setup.starting_cash,
        )
    except (SeamlessError, ValueError, TypeError) as exc:
        return {"error": str(exc), "started": started, "ended": time.time(), "pid": os.getpid()}
    summary = result.summary()
    out: dict[str, Any] = {
        "value": setup.objective.value(result, summary),
        "summary": compact_summary(summary),
        "bar_loop_s": result.elapsed_s,
        "started": started,
        "ended": time.time(),
        "cpu_s": time.process_time() - cpu,
        "pid": os.getpid(),
    }
    if task.detail:
        count_from = task.start if task.count_from is None else task.count_from
        out["window"] = window_figures(result, table, count_from, window.stop)
    return out


def compact_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a summary worth keeping with a trial (no params, no timings)."""
    keep = ("net_pnl", "realized_pnl", "final_equity", "max_drawdown", "sharpe", "fills")
    out: dict[str, Any] = {k: summary[k] for k in (*keep, "round_trips") if k in summary}
    if isinstance(summary.get("metrics"), Mapping):
        out["metrics"] = dict(summary["metrics"])
    return out


def window_figures(
    result: BacktestResult, table: ReplayTable, count_from: int, stop: int
) -> dict[str, Any]:
    """The figures of rows ``[count_from, stop)`` of a run that may have started earlier
    (warm-up): returns are measured from the equity at the close of the last bar before the
    window (the starting equity when there is none); only the window's fills and the round
    trips closed in it count. Also the window's equity points, fills and trips, for stitching."""
    from engine.research.metrics import exposure, json_ready, metrics_of

    first_ts = row_ts(table, count_from)
    last_ts = row_ts(table, stop - 1, forward=False)
    curve = result.equity_curve
    index = next((i for i, (ts, _) in enumerate(curve) if ts >= first_ts), len(curve))
    points = list(curve[index:])
    # the causal contract: nothing after the window's last bar
    assert not points or points[-1][0] <= last_ts, "a test window's run read past its window"
    # without warm-up the equity after the first bar is the starting equity (nothing filled)
    base = curve[index - 1] if index > 0 else (first_ts - 1, curve[0][1] if curve else math.nan)
    fills = [dict(f) for f in result.trades if int(f["ts"]) >= first_ts]
    trips: list[RoundTrip] = [t for t in result.trips if t.closed_ns >= first_ts]
    window_curve = [base, *points]
    metrics = metrics_of(window_curve, fills, trips)
    # positions are folded from every fill of the run: one carried in from the warm-up counts
    metrics["exposure"] = exposure([ts for ts, _ in points], list(result.trades))
    figures = curve_figures(window_curve)
    ready = json_ready(metrics)
    return {
        "first_ts": first_ts,
        "last_ts": last_ts,
        "bars": len(points),
        "fills": len(fills),
        "round_trips": len(trips),
        **figures,
        "realized_pnl": sum(t.realized_pnl for t in trips),
        "commissions": sum(float(f.get("commission", 0.0)) for f in fills),
        "sharpe": ready.get("sharpe"),
        "metrics": ready,
        "curve": window_curve,
        "trades": fills,
        "trips": trips,
    }


def curve_figures(curve: list[tuple[int, float]]) -> dict[str, float]:
    """Start and end equity, their difference (``net_pnl``: the change of equity, open
    positions marked to market), ``return`` and ``max_drawdown`` (currency, from the running
    peak) of an equity curve whose first point is the starting equity."""
    if not curve:
        nan = math.nan
        return {
            "start_equity": nan,
            "end_equity": nan,
            "final_equity": nan,
            "net_pnl": nan,
            "return": nan,
            "max_drawdown": nan,
        }
    start_eq, end_eq = float(curve[0][1]), float(curve[-1][1])
    peak, worst = start_eq, 0.0
    for _, eq in curve:
        peak = max(peak, eq)
        worst = max(worst, peak - eq)
    return {
        "start_equity": start_eq,
        "end_equity": end_eq,
        "final_equity": end_eq,
        "net_pnl": end_eq - start_eq,
        "return": end_eq / start_eq - 1.0 if start_eq else math.nan,
        "max_drawdown": worst,
    }


def window_objective(objective: Objective, figures: Mapping[str, Any]) -> float | None:
    """The objective read from :func:`window_figures` (a summary figure of the window, or one
    of its metrics); None when undefined."""
    source = figures if objective.source == "summary" else figures.get("metrics", {})
    raw = source.get(objective.key)
    if raw is None:
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


# -- worker processes ----------------------------------------------------------------------------
_SETUP: RunSetup | None = None
_TABLE: ReplayTable | None = None
_INIT_ERROR = ""


def init_worker(setup: RunSetup) -> None:
    """Pool initializer: ignore Ctrl-C (the parent handles it and ends the workers), then
    parse the data once for every trial this process will run. Never raises (a pool would
    start a new worker for ever): the error is raised by the worker's first trial instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _SETUP, _TABLE, _INIT_ERROR
    try:
        _SETUP = setup
        _TABLE = load_table(setup.data, setup.symbol)
    except Exception as exc:
        _INIT_ERROR = f"{type(exc).__name__}: {exc}"
    # What is loaded now lives as long as the worker: keep it out of the collector's full
    # passes, which every trial's many short-lived objects would otherwise trigger over it.
    gc.collect()
    gc.freeze()


def worker_run(task: Task) -> dict[str, Any]:
    """Run ``task`` in a worker set up by :func:`init_worker`."""
    if _INIT_ERROR or _SETUP is None or _TABLE is None:
        raise RuntimeError(f"the worker could not start: {_INIT_ERROR or 'not initialised'}")
    return run_task(_SETUP, _TABLE, task)
