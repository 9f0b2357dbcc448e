"""Backtests: the same strategy classes, components and event path as live, at full speed.

A backtest is a :class:`~engine.kernel.Kernel` in ``backtest`` mode: the same wiring as
``seamless run`` (broker, risk, P&L, portfolio, strategies, state store, journal), on a
synchronous bus and the data's clock. Each bar is published in turn and handled to completion
in the causal order of docs/architecture.md before the next, exactly as a live replay of the
same data handles it. With ``db_path`` the run is written to a DuckDB event log that
``seamless events``/``seamless state`` and notebooks can read afterwards.

Several symbols (:mod:`engine.backtest_data`) take the same path: their bars merged by
timestamp, the strategy given every symbol as a live config's ``symbols`` list does. The
equity curve has one point per timestamp (the equity after every bar of that time), and the
result has each symbol's P&L as the state and the portfolio hold it (``per_symbol``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.backtest_data import MergedTable, data_symbols, load_symbols, symbol_list
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
from streams import topics
from streams.clock import NS_PER_S, ManualClock
from streams.errors import ConfigError
from streams.events import BarReceived, DataRejected, Event, TradeExecuted
from streams.sources import MarketDataValidator, ReplayTable

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
    #: Each traded or replayed symbol's figures at the end, from the state (realized P&L,
    #: position), the broker's fills (count, commissions) and the portfolio (round trips).
    per_symbol: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

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
            "per_symbol": {
                symbol: {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}
                for symbol, row in self.per_symbol.items()
            },
        }


def backtest_config(
    config: SeamlessConfig | None = None,
    *,
    strategy: str | None = None,
    symbol: str | Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    starting_cash: float | None = None,
    broker: BrokerConfig | None = None,
    risk: RiskConfig | None = None,
    pnl: PnlConfig | None = None,
) -> SeamlessConfig:
    """The config a backtest runs with: ``config`` (default: the embedded defaults with risk
    limits off, since a backtest measures the strategy, not the limits) with the overrides
    given. ``strategy`` (short name or dotted path) replaces the configured strategies with
    one instance named ``bt_<symbol>`` trading ``symbol``; several symbols make one instance
    ``bt_<symbol>_<symbol>...`` trading them all, as a live config's ``symbols`` list does.
    The broker always keeps its account in memory: a backtest never touches the live broker
    file."""
    base = config if config is not None else SeamlessConfig(risk=_backtest_risk())
    changes: dict[str, Any] = {}
    if strategy is not None:
        symbols = symbol_list(symbol)
        if not symbols:
            raise ConfigError("a backtest of --strategy needs --symbol, got none")
        changes["strategies"] = (
            StrategyConfig(
                name="bt_" + "_".join(s.lower() for s in symbols),
                strategy=strategy,
                symbols=symbols,
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
    symbol: str | Sequence[str] | None = None,
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

    Several symbols: ``data`` a list of frames/paths with ``symbol`` a list of as many
    symbols (one per item, in order), or one frame/path with a ``symbol`` column, whose
    symbols ``symbol`` (a list) may pick; ``--strategy`` then trades every symbol of the data.
    """
    wanted = symbol_list(symbol)
    table, source, known, symbols = _market_data(data, wanted, config or SeamlessConfig())
    cfg = backtest_config(
        config,
        strategy=strategy,
        symbol=symbols,
        params=params,
        starting_cash=starting_cash,
        broker=broker,
        risk=risk,
        pnl=pnl,
    )
    journal = _open_journal(db_path)
    clock = ManualClock(max((table.first_ts or NS_PER_S) - NS_PER_S, 0))
    kernel = Kernel(cfg, mode=Mode.BACKTEST, clock=clock, journal=journal)  # closes it if it fails
    events = _validated(table, source, known)
    return _run(kernel, events, table.count, progress, progress_every, strategy, symbols)


def _market_data(
    data: Any, wanted: tuple[str, ...], config: SeamlessConfig
) -> tuple[ReplayTable | MergedTable, str, list[str] | None, tuple[str, ...]]:
    """The bars to replay, the source name they carry, the symbols accepted and the symbols
    a ``--strategy`` trades (the data's when it names them, else ``wanted``)."""
    if data is None:
        table = replay_table(config.feed)
        if table is None:
            raise ConfigError(
                f"feed.kind {config.feed.kind!r} has no recorded data to backtest: "
                "give --data, or a config whose feed is sample, csv or parquet"
            )
        return table, config.feed.kind, [s.upper() for s in config.feed.symbols], wanted
    if isinstance(data, ReplayTable):  # parsed once, replayed by many runs (the optimizer's)
        return data, "backtest", None, wanted
    if isinstance(data, MergedTable):
        return data, "backtest", None, wanted or data.symbols
    loaded = load_symbols(data, wanted)
    if isinstance(loaded, MergedTable):
        return loaded, "backtest", None, loaded.symbols
    return loaded, "backtest", None, wanted or data_symbols(loaded)


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


def _validated(
    table: ReplayTable | MergedTable, source: str, known: list[str] | None
) -> Iterator[Event]:
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
    symbols: tuple[str, ...] = (),
) -> BacktestResult:
    curve: list[tuple[int, float]] = []
    trades: list[dict[str, Any]] = []
    kernel.bus.subscribe(
        topics.ALL_FILLS,
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
                # One point per timestamp: the equity after every bar of that time.
                equity = get_state("pnl")["equity"]
                if curve and bar.ts_event <= curve[-1][0]:
                    curve[-1] = (curve[-1][0], equity)
                else:
                    curve.append((bar.ts_event, equity))
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
            per_symbol=_per_symbol(state, trades, trips, symbols),
        )
        # The metrics go into the run's own log (a state_changed, before the stop that ends
        # the run), so the log says what the run achieved: `seamless report` reads them back.
        record_metrics(kernel.store, result.metrics, run_id=kernel.run_id)
    finally:
        kernel.stop()
    return result


def _per_symbol(
    state: Mapping[str, Any],
    trades: Sequence[Mapping[str, Any]],
    trips: Sequence[RoundTrip],
    symbols: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Each symbol's figures at the end of the run (the replayed symbols and any traded):
    realized P&L, position and average price from the state's positions, fills and
    commissions from the broker's fills, round trips from the portfolio."""
    positions = state["positions"]
    names = sorted(set(symbols) | set(positions) | {str(t["symbol"]) for t in trades})
    out: dict[str, dict[str, Any]] = {}
    for symbol in names:
        pos = positions.get(symbol) or {}
        fills = [t for t in trades if t["symbol"] == symbol]
        realized = float(pos.get("realized_pnl", 0.0))
        commissions = float(sum(float(t["commission"]) for t in fills))
        out[symbol] = {
            "realized_pnl": realized,
            "commissions": commissions,
            "net_pnl": realized - commissions,
            "fills": len(fills),
            "round_trips": sum(1 for trip in trips if trip.symbol == symbol),
            "position": float(pos.get("qty", 0.0)),
            "avg_price": float(pos.get("avg_price", 0.0)),
        }
    return out


def _backtest_risk() -> RiskConfig:
    # Virtual time runs far faster than any live rate limit was meant for.
    return RiskConfig(
        max_orders_per_second=0, daily_loss_limit=0.0, max_position=0.0, max_order_notional=0.0
    )
