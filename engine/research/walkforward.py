"""Walk-forward analysis: ``seamless walkforward``.

The bars are cut into segments of ``--train-bars`` followed by ``--test-bars``; the next
segment starts ``--test-bars`` later (rolling), or keeps the first training bar and grows
(``--anchored``). For each segment the parameters are searched on the training window alone
(a full :func:`~engine.research.optimize.run_search`, its own study ``<study>.segNN``), then
the chosen parameters are backtested on the test window, which starts strictly after the
training window ends (asserted).

**Warm-up.** A test window's strategy needs history (the slow SMA). The test backtest starts
``warmup`` bars before the test window (bars of the training window: the past) with the chosen
parameters and the starting cash, and only the test window is counted: its returns are measured
from the equity at the close of the last warm-up bar, and only its fills and the round trips
closed in it count. The strategy trades through the warm-up as it would live (the engine has no
watch-only mode), so it may enter the window holding a position decided on warm-up bars; that
position's P&L from the window's first bar on is the window's. No test result reads a bar after
its window's last one: the test run's data stops there (asserted). ``--warmup auto`` (the
default) is the largest whole-number parameter (``slow`` for ``sma_crossover``, ``window`` for
``zscore``), at most the bars before the window; ``--warmup 0`` starts cold.

**Stitching.** The out-of-sample equity is the test windows one after the other, with returns
chained from the starting cash: each window's curve is scaled so that it starts where the
previous one ended (each test backtest itself starts from the starting cash).

The HTML report of a walk-forward is :mod:`engine.research.walkforward_report`'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.research.optimize import SearchOutcome, run_search
from engine.research.optuna_study import SearchSpec
from engine.research.pool import ProgressBar, StopFlag, TrialPool
from engine.research.trials import Task, curve_figures, row_ts, window_objective
from streams.clock import ns_to_datetime
from streams.errors import ConfigError

if TYPE_CHECKING:
    from engine.portfolio import RoundTrip
    from engine.strategy import Strategy
    from streams.sources import ReplayTable

#: Keys of the window figures not copied into the JSON of a segment (bulky or not JSON).
_BULKY = ("curve", "trades", "trips")


@dataclasses.dataclass(frozen=True)
class Segment:
    """Rows ``[train_start, train_stop)`` to train on, ``[test_start, test_stop)`` to test."""

    index: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int


def plan_segments(count: int, train: int, test: int, *, anchored: bool = False) -> list[Segment]:
    """The segments over ``count`` bars (bars after the last whole test window are unused);
    ConfigError naming ``--train-bars``/``--test-bars`` when not even one fits."""
    if train < 2:
        raise ConfigError(f"--train-bars must be at least 2, got {train}")
    if test < 1:
        raise ConfigError(f"--test-bars must be at least 1, got {test}")
    if train + test > count:
        raise ConfigError(
            f"--train-bars {train} + --test-bars {test} = {train + test} bars, but the data "
            f"has {count}: no segment fits"
        )
    segments: list[Segment] = []
    start = 0
    while start + train + test <= count:
        train_start = 0 if anchored else start
        test_start = start + train
        segments.append(
            Segment(len(segments) + 1, train_start, test_start, test_start, test_start + test)
        )
        start += test
    return segments


def resolve_warmup(warmup: int | None, params: Mapping[str, Any], available: int) -> int:
    """Warm-up bars for a test window: ``warmup``, or (None: auto) the largest whole-number
    parameter; never more than the ``available`` bars before the window."""
    if warmup is None:
        whole = [int(v) for v in params.values() if isinstance(v, int) and not isinstance(v, bool)]
        warmup = max(whole, default=0)
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0 or auto, got {warmup}")
    return min(warmup, available)


@dataclasses.dataclass
class WalkForwardOutcome:
    """Segments done (each with its chosen params and window figures) and the stitched run."""

    segments: list[dict[str, Any]]
    stitched: dict[str, Any]
    searches: list[SearchOutcome]
    interrupted: bool = False


def run_walkforward(
    base: SearchSpec,
    table: ReplayTable,
    plan: Sequence[Segment],
    pool: TrialPool,
    strategy_cls: type[Strategy],
    *,
    warmup: int | None = None,
    starting_cash: float,
    progress: ProgressBar | None = None,
    stop: StopFlag | None = None,
    on_segment: Any = None,
) -> WalkForwardOutcome:
    """Optimize on each training window, test the chosen params on the window after it."""
    objective = base.objective
    segments: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    searches: list[SearchOutcome] = []
    for seg in plan:
        train_end_ts = row_ts(table, seg.train_stop - 1, forward=False)
        test_start_ts = row_ts(table, seg.test_start)
        test_end_ts = row_ts(table, seg.test_stop - 1, forward=False)
        assert seg.test_start >= seg.train_stop and test_start_ts > train_end_ts, (
            f"segment {seg.index}: the test window must start after its training window"
        )
        spec = dataclasses.replace(
            base,
            study=f"{base.study}.seg{seg.index:02d}",
            seed=None if base.seed is None else base.seed + seg.index - 1,
            start=seg.train_start,
            stop=seg.train_stop,
        )
        if progress is not None:
            progress.label = f"segment {seg.index}/{len(plan)}: "
        search = run_search(spec, pool, strategy_cls, progress=progress, stop=stop)
        searches.append(search)
        if search.interrupted:
            return WalkForwardOutcome(
                segments, _stitch(windows, starting_cash, objective), searches, True
            )
        if search.best_params is None:
            raise ConfigError(
                f"segment {seg.index}: no trial completed on the training window"
                + (f" ({search.first_error})" if search.first_error else "")
            )
        params = dict(search.best_params)
        bars_before = seg.test_start  # every earlier row is the past of the test window
        warm = resolve_warmup(warmup, {**base.setup.fixed, **params}, bars_before)
        in_sample = pool.submit(
            Task(params, seg.train_start, seg.train_stop, seg.train_start, detail=True)
        )
        out_sample = pool.submit(
            Task(params, seg.test_start - warm, seg.test_stop, seg.test_start, detail=True)
        )
        is_result, oos_result = _get(in_sample, seg, "in-sample"), _get(out_sample, seg, "test")
        oos = oos_result["window"]
        # the test window's figures start at its first bar and end at its last: nothing after
        assert oos["first_ts"] == test_start_ts and oos["last_ts"] == test_end_ts
        assert all(ts <= test_end_ts for ts, _ in oos["curve"])
        windows.append(oos)
        record = {
            "index": seg.index,
            "train_start": _iso(row_ts(table, seg.train_start)),
            "train_end": _iso(train_end_ts),
            "test_start": _iso(test_start_ts),
            "test_end": _iso(test_end_ts),
            "train_bars": seg.train_stop - seg.train_start,
            "test_bars": seg.test_stop - seg.test_start,
            "warmup_bars": warm,
            "rows": {
                "train": [seg.train_start, seg.train_stop],
                "test": [seg.test_start, seg.test_stop],
            },
            "study": spec.study,
            "trials": search.trials,
            "params": params,
            "best_value": search.best_value,
            "in_sample": _window_json(is_result["window"], objective),
            "out_of_sample": _window_json(oos, objective),
        }
        segments.append(record)
        if on_segment is not None:
            on_segment(record, search)
    return WalkForwardOutcome(segments, _stitch(windows, starting_cash, objective), searches)


def _get(pending: Any, seg: Segment, what: str) -> dict[str, Any]:
    result: dict[str, Any] = pending.get()
    if "error" in result:
        raise ConfigError(f"segment {seg.index}: the {what} backtest failed: {result['error']}")
    return result


def _window_json(window: Mapping[str, Any], objective: Any) -> dict[str, Any]:
    out = {k: v for k, v in window.items() if k not in _BULKY and k not in ("first_ts", "last_ts")}
    out["objective"] = window_objective(objective, window)
    return out


def _stitch(
    windows: Sequence[Mapping[str, Any]], starting_cash: float, objective: Any
) -> dict[str, Any]:
    """The test windows' equity one after the other, returns chained from the starting cash,
    with its figures and metrics."""
    from engine.research.metrics import json_ready, metrics_of

    curve: list[tuple[int, float]] = []
    trades: list[dict[str, Any]] = []
    trips: list[RoundTrip] = []
    level = float(starting_cash)
    exposure_bars = 0.0
    bars = 0
    for window in windows:
        points = window["curve"]
        base = float(points[0][1])
        if not curve:
            curve.append((int(points[0][0]), level))
        scale = level / base if base else math.nan
        curve.extend((int(ts), float(eq) * scale) for ts, eq in points[1:])
        level = curve[-1][1]
        trades.extend(window["trades"])
        trips.extend(window["trips"])
        exposure = window["metrics"].get("exposure")
        if exposure is not None:
            exposure_bars += exposure * window["bars"]
        bars += window["bars"]
    if not curve:
        return {"bars": 0, "windows": 0, "equity": [], "metrics": {}}
    metrics = metrics_of(curve, trades, trips)
    metrics["exposure"] = exposure_bars / bars if bars else math.nan
    ready = json_ready(metrics)
    figures: dict[str, Any] = {
        "windows": len(windows),
        "bars": bars,
        "fills": len(trades),
        "round_trips": len(trips),
        **curve_figures(curve),
        "realized_pnl": sum(t.realized_pnl for t in trips),
        "commissions": sum(float(f.get("commission", 0.0)) for f in trades),
        "sharpe": ready.get("sharpe"),
        "metrics": ready,
    }
    figures["objective"] = window_objective(objective, figures)
    figures["equity"] = [[_iso(ts), eq] for ts, eq in curve]
    return figures


def _iso(ts: int) -> str:
    return ns_to_datetime(ts).isoformat()
