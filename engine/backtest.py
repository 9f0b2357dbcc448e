"""Backtests: the same strategy classes and event path as live, in virtual time, at full speed.

Bars are published one by one on a synchronous bus; the clock is set to each bar's time, so the
broker, risk, P&L and strategies see exactly what they would see live, and every event goes
through the journal and the state store. With ``db_path`` the run is written to a DuckDB event
log that ``seamless events``/``seamless state`` and notebooks can read afterwards.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.broker import BrokerConfig, PaperBroker
from engine.core import build_core
from engine.pnl import PnlConfig, PnlTracker
from engine.portfolio import Portfolio, RoundTrip
from engine.risk import RiskConfig, RiskEngine
from engine.strategy_host import StrategyHost, build_strategy
from persistence import EventLog
from state import MemoryJournal
from state.journal import Journal
from streams.clock import NS_PER_S, ManualClock
from streams.events import BarReceived, Event, TradeExecuted
from streams.sources import iter_bars

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class BacktestResult:
    """What a backtest produced: counts, P&L figures, the equity curve and the trades."""

    strategy: str
    params: dict[str, Any]
    bars: int
    fills: int
    round_trips: int
    realized_pnl: float
    net_pnl: float
    commissions: float
    final_equity: float
    max_drawdown: float
    sharpe: float
    elapsed_s: float
    equity_curve: tuple[tuple[int, float], ...]
    trades: tuple[dict[str, Any], ...]
    trips: tuple[RoundTrip, ...]
    rejected_bars: int = 0

    @property
    def bars_per_s(self) -> float:
        """Throughput of the run."""
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON-ready figures (what ``seamless backtest --json`` prints)."""
        return {
            "strategy": self.strategy,
            "params": self.params,
            "bars": self.bars,
            "fills": self.fills,
            "round_trips": self.round_trips,
            "realized_pnl": round(self.realized_pnl, 6),
            "net_pnl": round(self.net_pnl, 6),
            "commissions": round(self.commissions, 6),
            "final_equity": round(self.final_equity, 6),
            "max_drawdown": round(self.max_drawdown, 6),
            "sharpe": round(self.sharpe, 6),
            "elapsed_s": round(self.elapsed_s, 6),
            "bars_per_s": round(self.bars_per_s, 1),
            "rejected_bars": self.rejected_bars,
        }


def run_backtest(
    data: Any,
    *,
    strategy: str,
    symbol: str,
    params: Mapping[str, Any] | None = None,
    db_path: str | Path | None = None,
    starting_cash: float = 100_000.0,
    broker: BrokerConfig | None = None,
    risk: RiskConfig | None = None,
    pnl: PnlConfig | None = None,
    progress: Progress | None = None,
    progress_every: int = 1_000,
) -> BacktestResult:
    """Run ``strategy`` (short name or dotted path) with ``params`` over bars of ``symbol``.

    ``data`` is a DataFrame or a CSV/Parquet path with ``timestamp,open,high,low,close[,volume]``
    columns. ``progress(done, total)`` is called every ``progress_every`` bars and at the end.
    """
    params = dict(params or {})
    bars = list(iter_bars(data, symbol, source="backtest"))
    total = len(bars)
    first_ts = next((b.ts_event for b in bars), 0)
    clock = ManualClock(max(first_ts - NS_PER_S, 0))
    log = EventLog(db_path).open() if db_path is not None else None
    journal: Journal = log if log is not None else MemoryJournal()
    try:
        return _run(
            bars,
            total,
            clock,
            journal,
            strategy,
            symbol,
            params,
            starting_cash,
            broker,
            risk,
            pnl,
            progress,
            progress_every,
        )
    finally:
        if log is not None:
            log.close()


def _run(
    bars: Sequence[Event],
    total: int,
    clock: ManualClock,
    journal: Journal,
    spec: str,
    symbol: str,
    params: dict[str, Any],
    starting_cash: float,
    broker_config: BrokerConfig | None,
    risk_config: RiskConfig | None,
    pnl_config: PnlConfig | None,
    progress: Progress | None,
    progress_every: int,
) -> BacktestResult:
    name = f"bt_{symbol.lower()}"
    instance = build_strategy(spec, name, [symbol], params)
    core = build_core(
        journal=journal,
        clock=clock,
        threaded=False,
        starting_cash=starting_cash,
        live_views=False,
        durable_before_visible=False,
    )
    publish = core.bus.publish
    broker = PaperBroker(
        publish, clock, broker_config or BrokerConfig(account_path=""), starting_cash=starting_cash
    )
    risk = RiskEngine(publish, core.store, clock, broker, risk_config or _backtest_risk())
    portfolio = Portfolio(publish, core.store, clock)
    tracker = PnlTracker(
        publish, core.store, clock, pnl_config or PnlConfig(publish_interval_s=0.0)
    )
    host = StrategyHost(publish, core.store, clock, [instance])
    curve: list[tuple[int, float]] = []
    trades: list[dict[str, Any]] = []
    for component in (broker, risk, portfolio, tracker, host):
        component.attach(core.bus)
    core.bus.subscribe(
        "fills.*",
        lambda e: (
            trades.append(e.payload() | {"ts": e.ts_event})
            if isinstance(e, TradeExecuted)
            else None
        ),
        name="backtest.trades",
    )
    host.start()
    rejected = 0
    get_state = core.store.get_state
    started = time.perf_counter()
    for done, bar in enumerate(bars, 1):
        if isinstance(bar, BarReceived):
            if bar.ts_event > clock.now_ns():
                clock.set(bar.ts_event)
            publish(bar)
            curve.append((bar.ts_event, get_state("pnl")["equity"]))  # equity after this bar
        else:
            rejected += 1
            publish(bar)
        if progress is not None and (done % progress_every == 0 or done == total):
            progress(done, total)
    host.stop()
    elapsed = time.perf_counter() - started
    core.stop()
    journal.flush()
    state = core.store.get_state()
    trips = tuple(portfolio.round_trips)
    commissions = float(state["account"]["commissions"])
    realized = float(state["account"]["realized_pnl"])
    return BacktestResult(
        strategy=spec,
        params=instance.parameters() | {"symbols": [symbol]},
        bars=total - rejected,
        fills=len(trades),
        round_trips=len(trips),
        realized_pnl=realized,
        net_pnl=realized - commissions,
        commissions=commissions,
        final_equity=float(state["pnl"]["equity"]),
        max_drawdown=float(state["pnl"]["max_drawdown"]),
        sharpe=sharpe_ratio([e for _, e in curve], _periods_per_year(bars)),
        elapsed_s=elapsed,
        equity_curve=tuple(curve),
        trades=tuple(trades),
        trips=trips,
        rejected_bars=rejected,
    )


def _backtest_risk() -> RiskConfig:
    # Virtual time runs far faster than any live rate limit was meant for.
    return RiskConfig(
        max_orders_per_second=0, daily_loss_limit=0.0, max_position=0.0, max_order_notional=0.0
    )


def _periods_per_year(bars: Sequence[Event]) -> float:
    times = [b.ts_event for b in bars[:200] if isinstance(b, BarReceived)]
    steps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    if not steps:
        return 252.0
    step_s = steps[len(steps) // 2] / NS_PER_S
    if step_s >= 86_400 * 0.9:
        return 252.0 * 86_400 / max(step_s, 86_400)
    return 252.0 * 6.5 * 3_600 / step_s


def sharpe_ratio(equity: Sequence[float], periods_per_year: float) -> float:
    """Annualised Sharpe ratio (risk-free 0) of the period returns of an equity curve."""
    returns = [b / a - 1.0 for a, b in itertools.pairwise(equity) if a > 0]
    if len(returns) < 2:
        return 0.0
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if var <= 0:
        return 0.0
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)
