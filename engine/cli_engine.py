"""``seamless run`` and ``seamless backtest``: the live engine without the dashboard, and a
backtest over a bars file, both with the same strategy classes and event path."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from typing import Any, TextIO

import yaml

from streams.errors import ConfigError
from streams.events import Event


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``run`` and ``backtest`` on the ``seamless`` parser."""
    run = sub.add_parser("run", help="run the live engine (no dashboard) until SIGINT/SIGTERM")
    run.add_argument("--config", help="YAML config file (default: embedded defaults)")
    run.add_argument("--db", help="DuckDB event log file (overrides storage.db_path)")
    run.add_argument(
        "--print-events",
        choices=("critical", "all"),
        help="print events as JSON lines on stdout; critical ones only after they are committed",
    )

    bt = sub.add_parser("backtest", help="backtest a strategy over a bars file, full speed")
    bt.add_argument(
        "--data",
        required=True,
        help="CSV/Parquet with timestamp,open,high,low,close[,volume], or 'sample'",
    )
    bt.add_argument("--symbol", required=True, help="symbol of the bars (e.g. AAPL)")
    bt.add_argument(
        "--strategy", required=True, help="sma_crossover, zscore or package.module.Class"
    )
    bt.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="strategy parameter, repeatable (e.g. --param fast=5)",
    )
    bt.add_argument("--db", help="write the run's events to this DuckDB file")
    bt.add_argument("--cash", type=float, default=100_000.0, help="starting cash")
    bt.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def dispatch(args: argparse.Namespace, out: TextIO) -> int:
    """Run the engine sub-command named in ``args``."""
    if args.command == "run":
        return _run(args, out)
    if args.command == "backtest":
        return _backtest(args, out)
    raise ConfigError(f"unknown command {args.command!r}")


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

            kernel.bus.subscribe(">", emit, name="cli.print-events")

    if config.storage.backend == "postgres":  # a scale-out node: trades its book under a lease
        from engine.node import EngineNode

        tune_process(config.engine)
        return EngineNode(config, prepare=prepare).run(done)
    kernel = Kernel.from_config(config)
    prepare(kernel)
    kernel.start()
    tune_process(config.engine)
    print(
        f"seamless: engine {config.engine.name!r} running on {config.storage.db_path} "
        "(Ctrl-C to stop)",
        file=sys.stderr,
    )
    try:
        done.wait()
    finally:
        kernel.stop()
    print("seamless: stopped cleanly (snapshot written, run ended)", file=sys.stderr)
    return 0


def _backtest(args: argparse.Namespace, out: TextIO) -> int:
    from engine.backtest import run_backtest

    data: Any = args.data
    if args.data == "sample":
        from streams.sources import load_sample_bars

        data = load_sample_bars(args.symbol)
    progress = _ProgressBar(sys.stderr) if sys.stderr.isatty() and not args.json else None
    result = run_backtest(
        data,
        strategy=args.strategy,
        symbol=args.symbol.upper(),
        params=parse_params(args.param),
        db_path=args.db,
        starting_cash=args.cash,
        progress=progress,
    )
    if progress is not None:
        progress.close()
    summary = result.summary()
    if args.json:
        out.write(json.dumps(summary, sort_keys=True) + "\n")
        return 0
    out.write(f"backtest {result.strategy} on {args.symbol.upper()} {result.params}\n")
    for trade in result.trades[-20:]:
        out.write(f"  fill {trade['side']:<4} {trade['qty']:>10.2f} @ {trade['price']:>10.4f}\n")
    if len(result.trades) > 20:
        out.write(f"  ... {len(result.trades) - 20} earlier fills not shown\n")
    out.write(
        f"bars {result.bars}  fills {result.fills}  round trips {result.round_trips}\n"
        f"realized P&L {result.realized_pnl:.2f}  commissions {result.commissions:.2f}  "
        f"max drawdown {result.max_drawdown:.2f}  Sharpe {result.sharpe:.2f}\n"
        f"elapsed {result.elapsed_s:.3f} s  ({result.bars_per_s:,.0f} bars/s)\n"
    )
    return 0


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
