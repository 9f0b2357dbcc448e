"""Performance metrics of a run, from empyrical-reloaded (``import empyrical``), never hand-rolled.

Conventions (docs/strategies.md, "Metrics"):

* **Returns.** Daily simple returns of end-of-day equity: the equity curve (one point per
  timestamp with bars, the equity after every bar of that time, of all symbols) is reduced to
  the last equity of each UTC day, and the first day's return is measured from the curve's
  first point (the equity after the first bars, before any order can have filled: orders fill
  from the next bar on). Intraday bars therefore give one return per day with bars; daily bars
  one return per bar, the first 0. Computed with ``empyrical.simple_returns``.
* **Annualization.** 252 periods a year (``empyrical.DAILY``), risk-free rate 0, required return
  0 for Sortino; the library's defaults otherwise.
* **Figures from the library.** ``total_return`` (``cum_returns_final``), ``cagr``, ``sharpe``
  (``sharpe_ratio``), ``sortino`` (``sortino_ratio``), ``calmar`` (``calmar_ratio``),
  ``max_drawdown`` (``max_drawdown``, given as a positive fraction: 0.25 is a 25 % fall from
  the peak of end-of-day equity) and ``volatility`` (``annual_volatility``, annualized).
* **Trade statistics**, over the run's closed round trips (:class:`engine.portfolio.RoundTrip`,
  net of commissions; the library works on returns and has none of them): ``win_rate`` =
  trips with ``net_pnl > 0`` / all trips; ``profit_factor`` = sum of the winning trips' net P&L /
  |sum of the losing trips' net P&L| (``net_pnl < 0``); ``avg_win`` = mean net P&L of the winning
  trips (currency, > 0); ``avg_loss`` = mean net P&L of the losing trips (currency, < 0).
* **Exposure** = the fraction of the equity curve's points (one per timestamp with bars)
  at which the account holds a non-zero position in at least one symbol, positions folded from
  the run's fills (a fill at time t counts for the bar at t: fills happen on the bar that
  matched them). Reconciliation adjustments (live runs only) are not counted.
* **Turnover** = traded notional (sum of ``|qty| * price`` over every fill) / the mean of the
  end-of-day equity, over the whole run (not annualized; not pyfolio's daily turnover): 2.0
  means the run traded twice its average equity.

Degenerate cases: a figure the library cannot define is NaN (its own answer: a Sharpe ratio or
volatility of fewer than two returns, Sharpe and Sortino of flat equity, Calmar without a
drawdown), and a ratio with a zero denominator over a non-zero numerator is ``±inf`` as the
library gives it (Sortino without a losing day, profit factor without a losing trip). Averages
and rates over no trips are NaN; exposure and turnover are 0.0 without fills and NaN without an
equity curve. :func:`compute_metrics` keeps these floats; :func:`json_ready` (what
``BacktestResult.summary()`` and the event log carry) turns every non-finite value into
``None`` (JSON ``null``).

A backtest records its metrics in its own event log before it stops, as a ``state_changed``
event at :data:`METRICS_PATH` written by the ``engine`` actor with the run id in its metadata
(:func:`record_metrics`); :func:`recorded_metrics` reads them back per run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from engine.portfolio import Portfolio, RoundTrip
from state import State, apply, get_path, initial_state
from state.model import MISSING
from streams.clock import ManualClock
from streams.errors import AccessDenied
from streams.events import BUY, StateChanged, TradeExecuted

if TYPE_CHECKING:
    from engine.backtest import BacktestResult

log = logging.getLogger(__name__)


def _empyrical() -> Any:
    """The library, imported on first use: it imports SciPy (~1 s), which a dashboard or a
    backtest start-up should not pay before it computes a metric."""
    import empyrical

    return empyrical


#: Periods a year of daily returns (``empyrical.DAILY``'s annualization).
PERIODS_PER_YEAR = 252
#: Every key of :func:`compute_metrics`, in display order.
METRIC_KEYS = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "volatility",
    "win_rate",
    "profit_factor",
    "avg_win",
    "avg_loss",
    "exposure",
    "turnover",
)
#: What each metric is called on screen.
METRIC_LABELS = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "max_drawdown": "Max drawdown",
    "volatility": "Volatility (ann.)",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "avg_win": "Avg win",
    "avg_loss": "Avg loss",
    "exposure": "Exposure",
    "turnover": "Turnover",
}
_PERCENTS = frozenset(
    {"total_return", "cagr", "max_drawdown", "volatility", "win_rate", "exposure"}
)
_AMOUNTS = frozenset({"avg_win", "avg_loss"})
#: The state path a backtest's metrics are recorded at (a ``state_changed`` event).
METRICS_PATH = "backtest.metrics"
#: The actor that records them (owns every path in the default ``state.owners``).
METRICS_ACTOR = "engine"

EquityCurve = Iterable[tuple[int, float]]
Fill = Mapping[str, Any]


class _UpdatesState(Protocol):
    def update_state(
        self, path: str, value: Any, metadata: Mapping[str, Any] | None = None, *, actor: str
    ) -> Any: ...


class _ReadsEvents(Protocol):
    def read(self, *, types: Iterable[str] | None = None) -> list[Any]: ...


# -- returns ---------------------------------------------------------------------------------------
def end_of_day_equity(equity_curve: EquityCurve) -> pd.Series:
    """The last equity of each UTC day of ``(ts_ns, equity)`` points, indexed by the day."""
    points = list(equity_curve)
    if not points:
        return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
    times = pd.to_datetime(np.array([ts for ts, _ in points], dtype=np.int64), unit="ns", utc=True)
    equity = pd.Series([float(eq) for _, eq in points], index=times)
    return equity.groupby(times.floor("D")).last()


def daily_returns(equity_curve: EquityCurve) -> pd.Series:
    """Daily simple returns of end-of-day equity (see the module docstring), one per UTC day
    with points, indexed by the day (UTC midnight); empty for an empty curve."""
    points = list(equity_curve)
    eod = end_of_day_equity(points)
    if eod.empty:
        return pd.Series([], index=eod.index, dtype=float, name="returns")
    opening = pd.Series([float(points[0][1])], index=[eod.index[0] - pd.Timedelta(days=1)])
    returns = _empyrical().simple_returns(pd.concat([opening, eod]))
    return returns.astype(float).rename("returns")


def returns_metrics(returns: pd.Series) -> dict[str, float]:
    """The library's figures of daily ``returns`` (252 a year, risk-free 0)."""
    empyrical = _empyrical()
    daily = empyrical.DAILY
    return {
        "total_return": float(empyrical.cum_returns_final(returns)),
        "cagr": float(empyrical.cagr(returns, period=daily)),
        "sharpe": float(empyrical.sharpe_ratio(returns, risk_free=0.0, period=daily)),
        "sortino": float(empyrical.sortino_ratio(returns, required_return=0.0, period=daily)),
        "calmar": float(empyrical.calmar_ratio(returns, period=daily)),
        "max_drawdown": abs(float(empyrical.max_drawdown(returns))),
        "volatility": float(empyrical.annual_volatility(returns, period=daily)),
    }


def monthly_returns(returns: pd.Series) -> pd.Series:
    """Compounded monthly returns of daily ``returns``, keyed by ``(year, month)``."""
    if returns.empty:
        return pd.Series([], dtype=float)
    empyrical = _empyrical()
    return empyrical.aggregate_returns(returns, empyrical.MONTHLY).astype(float)


def drawdown(returns: pd.Series) -> pd.Series:
    """The drawdown of end-of-day equity below its running peak, as positive fractions
    (``empyrical.stats.drawdown_series``, negated)."""
    if returns.empty:
        return pd.Series([], index=returns.index, dtype=float, name="drawdown")
    return (-_empyrical().stats.drawdown_series(returns)).astype(float).rename("drawdown")


# -- trades, exposure, turnover --------------------------------------------------------------------
def trade_stats(trips: Iterable[RoundTrip]) -> dict[str, float]:
    """``win_rate``, ``profit_factor``, ``avg_win`` and ``avg_loss`` of closed round trips (net
    of commissions); NaN over no trips (see the module docstring)."""
    pnls = [trip.net_pnl for trip in trips]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    gross_win, gross_loss = sum(wins), -sum(losses)
    if gross_loss > 0:
        profit_factor = gross_win / gross_loss
    else:
        profit_factor = math.inf if gross_win > 0 else math.nan
    return {
        "win_rate": len(wins) / len(pnls) if pnls else math.nan,
        "profit_factor": profit_factor,
        "avg_win": gross_win / len(wins) if wins else math.nan,
        "avg_loss": -gross_loss / len(losses) if losses else math.nan,
    }


def round_trips(fills: Iterable[TradeExecuted]) -> tuple[RoundTrip, ...]:
    """The round trips of a run's fills as its :class:`~engine.portfolio.Portfolio` counted
    them: the fills folded into positions (``state.apply``) and handed to a portfolio in order.
    For a run read back from its log (a backtest keeps ``result.trips``)."""
    folded = _FoldedState()
    portfolio = Portfolio(lambda _event: None, folded, ManualClock(0))
    for fill in fills:
        folded.state = apply(folded.state, fill)
        portfolio.on_fill(fill)
    return tuple(portfolio.round_trips)


class _FoldedState:
    """The little of a state store a portfolio reads: ``get_state`` of a folded state."""

    def __init__(self) -> None:
        self.state: State = initial_state()

    def get_state(self, path: str = "", default: Any = MISSING) -> Any:
        return get_path(self.state, path, default)


def exposure(bar_times: Sequence[int], fills: Iterable[Fill]) -> float:
    """The fraction of ``bar_times`` at which some symbol's position (folded from ``fills``:
    ``ts``, ``symbol``, ``side``, ``qty``) is non-zero; NaN without bars."""
    if len(bar_times) == 0:
        return math.nan
    by_symbol: dict[str, tuple[list[int], list[float]]] = {}
    for fill in sorted(fills, key=lambda f: int(f["ts"])):
        times, signed = by_symbol.setdefault(str(fill["symbol"]), ([], []))
        times.append(int(fill["ts"]))
        signed.append(float(fill["qty"]) if fill["side"] == BUY else -float(fill["qty"]))
    bars = np.asarray(bar_times, dtype=np.int64)
    in_market = np.zeros(len(bars), dtype=bool)
    for times, signed in by_symbol.values():
        position = np.concatenate([[0.0], np.cumsum(signed)])
        after = np.searchsorted(np.asarray(times, dtype=np.int64), bars, side="right")
        in_market |= np.abs(position[after]) > 1e-9
    return float(in_market.mean())


def turnover(fills: Iterable[Fill], equity_curve: EquityCurve) -> float:
    """Traded notional over the mean end-of-day equity; 0.0 without fills, NaN without equity."""
    notional = sum(abs(float(f["qty"])) * float(f["price"]) for f in fills)
    eod = end_of_day_equity(equity_curve)
    mean_equity = float(eod.mean()) if not eod.empty else math.nan
    if notional == 0.0:
        return 0.0 if not math.isnan(mean_equity) else math.nan
    if math.isnan(mean_equity) or mean_equity <= 0:
        return math.nan
    return notional / mean_equity


# -- the whole set ---------------------------------------------------------------------------------
def metrics_of(
    equity_curve: Sequence[tuple[int, float]], fills: Sequence[Fill], trips: Iterable[RoundTrip]
) -> dict[str, float]:
    """Every metric of :data:`METRIC_KEYS` from a run's equity curve, fills and round trips."""
    figures = returns_metrics(daily_returns(equity_curve))
    figures |= trade_stats(trips)
    figures["exposure"] = exposure([ts for ts, _ in equity_curve], fills)
    figures["turnover"] = turnover(fills, equity_curve)
    return {key: figures[key] for key in METRIC_KEYS}


def compute_metrics(result: BacktestResult) -> dict[str, float]:
    """The metrics of a backtest (module docstring): from its equity curve, fills and trips."""
    return metrics_of(result.equity_curve, result.trades, result.trips)


def json_ready(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """``metrics`` with every NaN or infinite value as ``None`` (valid JSON)."""
    return {k: (float(v) if math.isfinite(v) else None) for k, v in metrics.items()}


def format_metric(key: str, value: float | None) -> str:
    """``value`` of metric ``key`` for people: percentages, amounts, ratios; ``n/a`` when
    undefined (NaN or ``None``) and ``inf``/``-inf`` when infinite."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if key in _PERCENTS:
        return f"{value:.2%}"
    if key in _AMOUNTS:
        return f"{value:,.2f}"
    if key == "turnover":
        return f"{value:.2f}x"
    return f"{value:.2f}"


# -- stored with the run ---------------------------------------------------------------------------
def record_metrics(
    store: _UpdatesState, metrics: Mapping[str, float], *, run_id: str | None
) -> Any:
    """Record ``metrics`` in the run's event log: a ``state_changed`` at :data:`METRICS_PATH`
    by the ``engine`` actor, ``metadata.run_id`` naming the run. Call it on the engine thread
    before the kernel stops; returns the event.

    A config whose ``state.owners`` keep the ``engine`` actor from that path gets the refusal
    recorded (``write_refused``) and logged, and None: the run's result stands, and a report
    computes the metrics from the log instead."""
    try:
        return store.update_state(
            METRICS_PATH, json_ready(metrics), {"run_id": run_id}, actor=METRICS_ACTOR
        )
    except AccessDenied as exc:
        log.warning("the run's metrics were not recorded in its log: %s", exc)
        return None


def recorded_metrics(log: _ReadsEvents) -> dict[str | None, dict[str, float | None]]:
    """The metrics recorded in an event log, by run id (the runs table's ``run_id``), oldest
    run first; the last record of a run wins."""
    found: dict[str | None, dict[str, float | None]] = {}
    for event in log.read(types=[StateChanged.TYPE]):
        if isinstance(event, StateChanged) and event.path == METRICS_PATH:
            found[event.metadata.get("run_id")] = dict(event.value)
    return found
