"""``seamless run`` and ``seamless backtest``: the engine without the dashboard, and a backtest,
both built by the one kernel from the same config, with the same strategy classes and event
path. ``run`` with a replay feed that does not loop stops cleanly at the end of the data."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

from streams import topics
from streams.clock import ns_to_datetime
from streams.errors import ConfigError
from streams.events import Event


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``run`` and ``backtest`` on the ``seamless`` parser."""
    run = sub.add_parser("run", help="run the live engine (no dashboard) until SIGINT/SIGTERM")
    run.set_defaults(handler=_run)
    run.add_argument("--config", help="YAML config file (default: embedded defaults)")
    run.add_argument("--db", help="DuckDB event log file (overrides storage.db_path)")
    run.add_argument(
        "--print-events",
        choices=("critical", "all"),
        help="print events as JSON lines on stdout; critical ones only after they are committed",
    )

    run.add_argument(
        "--keep-running",
        action="store_true",
        help="with a replay feed that does not loop: keep running after the data ends "
        "(default: stop cleanly, snapshot written, exit 0)",
    )

    bt = sub.add_parser(
        "backtest",
        help="backtest at full speed: the same engine, config and event path as 'run'",
    )
    bt.set_defaults(handler=_backtest)
    bt.add_argument(
        "--config",
        help="YAML config: its broker, risk, pnl and strategies sections, and (without --data) "
        "its feed's data (default: embedded defaults, risk limits off)",
    )
    bt.add_argument(
        "--data",
        action="append",
        help="CSV/Parquet with timestamp,open,high,low,close[,volume][,symbol], or 'sample' "
        "(default: the config's feed data); repeatable: one file per --symbol, in order",
    )
    bt.add_argument(
        "--symbol",
        action="append",
        help="symbol of the bars (e.g. AAPL), needed with --strategy unless the data has a "
        "symbol column; repeatable: several symbols, or some of a symbol column's",
    )
    bt.add_argument(
        "--strategy",
        help="sma_crossover, zscore or package.module.Class (default: the config's strategies)",
    )
    bt.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="strategy parameter, repeatable (e.g. --param fast=5); needs --strategy",
    )
    bt.add_argument("--db", help="write the run's events to this new DuckDB file")
    bt.add_argument("--cash", type=float, help="starting cash (default: state.starting_cash)")
    bt.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["fast=5", "qty=1.5", "allow_short=false"]`` -> typed values (YAML scalars)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param expects KEY=VALUE, got {pair!r}")
        try:
            params[key.strip()] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            params[key.strip()] = text
    return params


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from engine.config import load_config
    from engine.kernel import Kernel
    from engine.process_tuning import tune_process
    from engine.supervision import Supervisor, engine_status

    config = load_config(args.config)
    if args.db:
        config = dataclasses.replace(
            config, storage=dataclasses.replace(config.storage, db_path=args.db)
        )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())

    def prepare(kernel: Kernel) -> None:
        if args.print_events:
            only_critical = args.print_events == "critical"

            def emit(event: Event) -> None:
                # Subscribers run after the commit: a printed critical event is durable.
                if only_critical and not event.critical:
                    return
                out.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
                out.flush()

            kernel.bus.subscribe(topics.ALL_TOPICS, emit, name="cli.print-events")

    if config.storage.backend == "postgres":  # a scale-out node: trades its book under a lease
        from engine.node import EngineNode

        tune_process(config.engine)
        node = EngineNode(config, prepare=prepare)
        # systemd: READY=1 once the node holds its lease and its kernel has started.
        node_supervisor = Supervisor.from_env(lambda: engine_status(node.kernel)).start()
        try:
            return node.run(done)
        finally:
            node_supervisor.stopping()
            node_supervisor.close()
    # systemd (docs/operations.md): WATCHDOG=1 from now on while live, READY=1 once started.
    built: list[Kernel] = []
    supervisor = Supervisor.from_env(lambda: engine_status(built[0] if built else None)).start()
    try:
        kernel = Kernel.from_config(config)
        built.append(kernel)
        prepare(kernel)
        kernel.start()
    except BaseException:
        supervisor.close()
        raise
    tune_process(config.engine)
    print(
        f"seamless: engine {config.engine.name!r} running on {config.storage.db_path} "
        f"({kernel.mode} mode; Ctrl-C to stop)",
        file=sys.stderr,
    )
    until_data_ends = not args.keep_running
    try:
        while not done.wait(0.1):
            if until_data_ends and kernel.data_finished:
                print("seamless: end of the replayed data", file=sys.stderr)
                break
    finally:
        supervisor.stopping()
        try:
            kernel.stop()
        finally:
            supervisor.close()
    print("seamless: stopped cleanly (snapshot written, run ended)", file=sys.stderr)
    return 0


def _backtest(args: argparse.Namespace, out: TextIO) -> int:
    from engine.backtest import run_backtest
    from engine.config import load_config

    if args.param and not args.strategy:
        raise ConfigError("--param needs --strategy (the config's strategies keep their params)")
    config = load_config(args.config) if args.config else None
    symbols = [s.upper() for s in args.symbol or []]
    data = _backtest_data(args.data or [], symbols)
    progress = _ProgressBar(sys.stderr) if sys.stderr.isatty() and not args.json else None
    result = run_backtest(
        data,
        strategy=args.strategy,
        symbol=symbols[0] if len(symbols) == 1 else symbols or None,
        params=parse_params(args.param),
        config=config,
        db_path=args.db,
        starting_cash=args.cash,
        progress=progress,
    )
    if progress is not None:
        progress.close()
    _report_rejections(result.rejections)
    summary = result.summary()
    if args.json:
        out.write(json.dumps(summary, sort_keys=True) + "\n")
        return 0
    out.write(f"backtest {result.strategy} {result.params}\n")
    for trade in result.trades[-20:]:
        out.write(
            f"  fill {trade['symbol']:<6} {trade['side']:<4} {trade['qty']:>10.2f} "
            f"@ {trade['price']:>10.4f}\n"
        )
    if len(result.trades) > 20:
        out.write(f"  ... {len(result.trades) - 20} earlier fills not shown\n")
    out.write(
        f"bars {result.bars}  fills {result.fills}  round trips {result.round_trips}\n"
        f"realized P&L {result.realized_pnl:.2f}  commissions {result.commissions:.2f}  "
        f"max drawdown {result.max_drawdown:.2f} (bar by bar)\n"
        f"{_metrics_line(result.metrics)}\n"
        f"elapsed {result.elapsed_s:.3f} s  ({result.bars_per_s:,.0f} bars/s)\n"
    )
    if len(result.per_symbol) > 1:
        out.write(_per_symbol_table(result.per_symbol))
    return 0


def _backtest_data(data: list[str], symbols: list[str]) -> Any:
    """What ``--data`` names: None (the config's feed), a path, several paths, or the sample
    bars of ``--symbol`` (several symbols: one frame with a symbol column)."""
    if "sample" not in data:
        return data[0] if len(data) == 1 else data or None
    if len(data) > 1:
        raise ConfigError("--data sample cannot be combined with other --data files")
    if not symbols:
        raise ConfigError("--data sample needs --symbol (one of the sample symbols)")
    from engine.backtest_data import symbol_list
    from streams.sources import load_sample_bars, load_sample_universe

    symbol_list(symbols)  # a duplicate is named before the sample is read
    return load_sample_bars(symbols[0]) if len(symbols) == 1 else load_sample_universe(symbols)


def _per_symbol_table(per_symbol: dict[str, dict[str, Any]]) -> str:
    """Each symbol's P&L as a small table (the portfolio's figures are the lines above)."""
    lines = [
        f"{'symbol':<8}{'fills':>7}{'trips':>7}{'realized':>14}{'commissions':>13}"
        f"{'net':>14}{'position':>12}"
    ]
    for symbol, row in per_symbol.items():
        lines.append(
            f"{symbol:<8}{row['fills']:>7}{row['round_trips']:>7}{row['realized_pnl']:>14,.2f}"
            f"{row['commissions']:>13,.2f}{row['net_pnl']:>14,.2f}{row['position']:>12,.2f}"
        )
    return "\n".join(lines) + "\n"


def _metrics_line(metrics: dict[str, float]) -> str:
    """The metrics on two lines, returns then trades (docs/strategies.md, "Metrics")."""
    from engine.research.metrics import METRIC_LABELS, format_metric

    shown = [f"{METRIC_LABELS[k]} {format_metric(k, v)}" for k, v in metrics.items()]
    return "  ".join(shown[:7]) + "\n" + "  ".join(shown[7:])


def _report_rejections(rejections: Sequence[Event], shown: int = 5) -> None:
    """Name the rows the validator refused (field, value, why) on stderr; they are also
    ``data_rejected`` events in the run's log."""
    for event in rejections[:shown]:
        print(
            f"seamless backtest: rejected a {getattr(event, 'symbol', '')} row at "
            f"{ns_to_datetime(event.ts_event):%Y-%m-%d %H:%M:%S}: "
            f"{getattr(event, 'field', '?')}={getattr(event, 'value', '?')} "
            f"({getattr(event, 'reason', '')})",
            file=sys.stderr,
        )
    if len(rejections) > shown:
        print(
            f"seamless backtest: ... {len(rejections) - shown} more rejected rows "
            "(seamless events --db F --topic 'data.rejected.*')",
            file=sys.stderr,
        )


class _ProgressBar:
    """A one-line progress bar on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, done: int, total: int) -> None:
        width = 40
        filled = int(width * done / total) if total else width
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} bars")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
