"""Backtests: the same strategy classes, components and event path as live, at full speed.

A backtest is a :class:`~engine.kernel.Kernel` in ``backtest`` mode: the same wiring as
``seamless run`` (broker, risk, P&L, portfolio, strategies, state store, journal), on a
synchronous bus and the data's clock. Each bar is published in turn and handled to completion
in the causal order of docs/architecture.md before the next, exactly as a live replay of the
same data handles it. With ``db_path`` the run is written to a DuckDB event log that
``seamless events``/``seamless state`` and notebooks can read afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.config import (
    BrokerConfig,
    PnlConfig,
    RiskConfig,
    SeamlessConfig,
    StrategyConfig,
)
from engine.feeds import replay_table
from engine.kernel import Kernel, Mode
from engine.portfolio import RoundTrip
from engine.research.metrics import compute_metrics, json_ready, record_metrics
from persistence import EventLog
from state import MemoryJournal
from state.journal import Journal
from streams.clock import NS_PER_S, ManualClock
from streams.errors import ConfigError
from streams.events import BarReceived, DataRejected, Event, TradeExecuted
from streams.sources import MarketDataValidator, ReplayTable, load_replay_table

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
    elapsed_s: float
    equity_curve: tuple[tuple[int, float], ...]
    trades: tuple[dict[str, Any], ...]
    trips: tuple[RoundTrip, ...]
    rejected_bars: int = 0
    #: The ``data_rejected`` events of the run (bad rows), each naming the field and value.
    rejections: tuple[DataRejected, ...] = ()

    @property
    def bars_per_s(self) -> float:
        """Throughput of the run."""
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @functools.cached_property
    def metrics(self) -> dict[str, float]:
        """The run's performance metrics from empyrical-reloaded (daily returns of end-of-day
        equity, 252 a year, risk-free 0): :func:`engine.research.metrics.compute_metrics`."""
        return compute_metrics(self)

    @property
    def sharpe(self) -> float:
        """The library's Sharpe ratio, ``metrics["sharpe"]`` (NaN when undefined)."""
        return self.metrics["sharpe"]

    def summary(self) -> dict[str, Any]:
        """The JSON-ready figures (what ``seamless backtest --json`` prints). ``max_drawdown``
        is the P&L tracker's, in currency over every bar; ``metrics`` (the library's, with
        ``null`` for an undefined figure) has it as a fraction of end-of-day equity, and
        ``sharpe`` is ``metrics["sharpe"]``."""
        metrics = json_ready(self.metrics)
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
            "sharpe": metrics["sharpe"],
            "elapsed_s": round(self.elapsed_s, 6),
            "bars_per_s": round(self.bars_per_s, 1),
            "rejected_bars": self.rejected_bars,
            "metrics": metrics,
        }


def backtest_config(
    config: SeamlessConfig | None = None,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
    params: Mapping[str, Any] | None = None,
    starting_cash: float | None = None,
    broker: BrokerConfig | None = None,
    risk: RiskConfig | None = None,
    pnl: PnlConfig | None = None,
) -> SeamlessConfig:
    """The config a backtest runs with: ``config`` (default: the embedded defaults with risk
    limits off, since a backtest measures the strategy, not the limits) with the overrides
    given. ``strategy`` (short name or dotted path) replaces the configured strategies with
    one instance named ``bt_<symbol>`` trading ``symbol``. The broker always keeps its account
    in memory: a backtest never touches the live broker file."""
    base = config if config is not None else SeamlessConfig(risk=_backtest_risk())
    changes: dict[str, Any] = {}
    if strategy is not None:
        if not symbol:
            raise ConfigError("a backtest of --strategy needs --symbol, got none")
        changes["strategies"] = (
            StrategyConfig(
                name=f"bt_{symbol.lower()}",
                strategy=strategy,
                symbols=(symbol.upper(),),
                params=dict(params or {}),
            ),
        )
    if starting_cash is not None:
        changes["state"] = dataclasses.replace(base.state, starting_cash=float(starting_cash))
    changes["broker"] = dataclasses.replace(broker or base.broker, account_path="")
    if risk is not None:
        changes["risk"] = risk
    if pnl is not None:
        changes["pnl"] = pnl
    return dataclasses.replace(base, **changes)


def run_backtest(
    data: Any = None,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
    params: Mapping[str, Any] | None = None,
    config: SeamlessConfig | None = None,
    db_path: str | Path | None = None,
    starting_cash: float | None = None,
    broker: BrokerConfig | None = None,
    risk: RiskConfig | None = None,
    pnl: PnlConfig | None = None,
    progress: Progress | None = None,
    progress_every: int = 1_000,
) -> BacktestResult:
    """Run a backtest; see :func:`backtest_config` for how the config is made.

    ``data`` is a DataFrame, a CSV/Parquet path with ``timestamp,open,high,low,close
    [,volume][,symbol]`` columns (``symbol`` names the instrument when there is no symbol
    column) or a table already parsed by ``load_replay_table`` (many runs, one parse); without
    ``data``, the bars of ``config.feed`` (sample, csv or parquet) are used,
    as ``seamless run`` would replay them. ``db_path`` writes the run to a new DuckDB event
    log (ConfigError if the file exists). ``progress(done, total)`` is called every
    ``progress_every`` bars and at the end.
    """
    cfg = backtest_config(
        config,
        strategy=strategy,
        symbol=symbol,
        params=params,
        starting_cash=starting_cash,
        broker=broker,
        risk=risk,
        pnl=pnl,
    )
    table, source, known = _market_data(data, symbol, cfg)
    journal = _open_journal(db_path)
    clock = ManualClock(max((table.first_ts or NS_PER_S) - NS_PER_S, 0))
    kernel = Kernel(cfg, mode=Mode.BACKTEST, clock=clock, journal=journal)  # closes it if it fails
    events = _validated(table, source, known)
    return _run(kernel, events, table.count, progress, progress_every, strategy)


def _market_data(
    data: Any, symbol: str | None, config: SeamlessConfig
) -> tuple[ReplayTable, str, list[str] | None]:
    """The bars to replay, the source name they carry and the symbols accepted."""
    if data is None:
        table = replay_table(config.feed)
        if table is None:
            raise ConfigError(
                f"feed.kind {config.feed.kind!r} has no recorded data to backtest: "
                "give --data, or a config whose feed is sample, csv or parquet"
            )
        return table, config.feed.kind, [s.upper() for s in config.feed.symbols]
    if isinstance(data, ReplayTable):  # parsed once, replayed by many runs (the optimizer's)
        return data, "backtest", None
    try:
        table = load_replay_table(data, kind="bars", symbol=symbol.upper() if symbol else None)
    except ConfigError as exc:
        where = f"--data {str(data)!r}: " if isinstance(data, str | Path) else ""
        raise ConfigError(f"{where}{exc}") from exc
    return table, "backtest", None


def _open_journal(db_path: str | Path | None) -> Journal:
    if db_path is None:
        return MemoryJournal()
    path = Path(db_path)
    if path.exists() and path.stat().st_size > 0:
        raise ConfigError(
            f"--db {str(path)!r}: the file exists; a backtest writes a new event log "
            "(remove it or choose another name)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return EventLog(path).open()


def _validated(table: ReplayTable, source: str, known: list[str] | None) -> Iterator[Event]:
    validator = MarketDataValidator(known, source)
    for event in table.events(source=source):
        yield validator.check(event)


def _run(
    kernel: Kernel,
    bars: Iterator[Event],
    total: int,
    progress: Progress | None,
    progress_every: int,
    spec: str | None,
) -> BacktestResult:
    curve: list[tuple[int, float]] = []
    trades: list[dict[str, Any]] = []
    kernel.bus.subscribe(
        "fills.*",
        lambda e: (
            trades.append(e.payload() | {"ts": e.ts_event})
            if isinstance(e, TradeExecuted)
            else None
        ),
        name="backtest.trades",
    )
    kernel.start()
    publish = kernel.bus.publish
    get_state = kernel.store.get_state
    rejections: list[DataRejected] = []
    started = time.perf_counter()
    try:
        for done, bar in enumerate(bars, 1):
            publish(bar)
            if isinstance(bar, BarReceived):
                curve.append((bar.ts_event, get_state("pnl")["equity"]))  # equity after the bar
            elif isinstance(bar, DataRejected):
                rejections.append(bar)
            if progress is not None and (done % progress_every == 0 or done == total):
                progress(done, total)
        elapsed = time.perf_counter() - started
        state = kernel.store.get_state()
        trips = tuple(kernel.portfolio.round_trips)
        instances = list(kernel.host.strategies.values())
        commissions = float(state["account"]["commissions"])
        realized = float(state["account"]["realized_pnl"])
        first = instances[0] if instances else None
        result = BacktestResult(
            strategy=spec or (kernel.config.strategies[0].strategy if first is not None else ""),
            params=first.parameters() if first is not None else {},
            bars=total - len(rejections),
            fills=len(trades),
            round_trips=len(trips),
            realized_pnl=realized,
            net_pnl=realized - commissions,
            commissions=commissions,
            final_equity=float(state["pnl"]["equity"]),
            max_drawdown=float(state["pnl"]["max_drawdown"]),
            elapsed_s=elapsed,
            equity_curve=tuple(curve),
            trades=tuple(trades),
            trips=trips,
            rejected_bars=len(rejections),
            rejections=tuple(rejections),
        )
        # The metrics go into the run's own log (a state_changed, before the stop that ends
        # the run), so the log says what the run achieved: `seamless report` reads them back.
        record_metrics(kernel.store, result.metrics, run_id=kernel.run_id)
    finally:
        kernel.stop()
    return result


def _backtest_risk() -> RiskConfig:
    # Virtual time runs far faster than any live rate limit was meant for.
    return RiskConfig(
        max_orders_per_second=0, daily_loss_limit=0.0, max_position=0.0, max_order_notional=0.0
    )
