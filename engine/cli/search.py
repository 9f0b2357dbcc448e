"""What ``seamless optimize`` and ``seamless walkforward`` share: their search arguments, and
everything checked before a worker starts (config, strategy, space, objective, data), which
gives the :class:`~engine.research.optuna_study.SearchSpec` the search runs.

See :mod:`engine.research.optimize` (trials, seeds, resuming and sharing a study),
:mod:`engine.research.walkforward` (windows, warm-up, stitching) and
:mod:`engine.research.studies` (where results are kept), and docs/strategies.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli import positive_int
from streams.errors import ConfigError

if TYPE_CHECKING:
    from engine.research.optuna_study import SearchSpec
    from engine.strategy import Strategy


def add_search_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    handler: Callable[[argparse.Namespace, TextIO], int],
) -> argparse.ArgumentParser:
    """Register the search command ``name`` (run by ``handler``) with the search arguments;
    its parser, for the arguments of its own."""
    parser = sub.add_parser(name, help=help)
    parser.set_defaults(handler=handler)
    _add_search_args(parser)
    return parser


def _add_search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        help="CSV/Parquet with timestamp,open,high,low,close[,volume][,symbol], "
        "or 'sample' (the bundled daily bars of --symbol)",
    )
    p.add_argument("--symbol", required=True, help="the symbol the strategy trades (e.g. AAPL)")
    p.add_argument(
        "--strategy", required=True, help="sma_crossover, zscore or package.module.Class"
    )
    p.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="K=LOW:HIGH[:STEP]",
        help="a parameter to search, repeatable: a range (whole numbers for an "
        "Integer parameter) or choices K=A,B,C",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a fixed strategy parameter, repeatable",
    )
    p.add_argument(
        "--objective",
        default="net_pnl",
        metavar="METRIC",
        help="what to optimize: a backtest summary figure (net_pnl, sharpe, "
        "max_drawdown...) or a metric (sortino, cagr...); default net_pnl",
    )
    p.add_argument(
        "--direction",
        choices=("maximize", "minimize"),
        help="default: minimize drawdown, volatility and commissions, maximize the rest",
    )
    p.add_argument(
        "--trials",
        type=positive_int,
        metavar="N",
        help="trials in the study (a re-run resumes up to N; default 100, or the "
        "whole grid with --sampler grid)",
    )
    p.add_argument(
        "--jobs", type=positive_int, default=1, metavar="J", help="worker processes (default 1)"
    )
    p.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe")
    p.add_argument("--seed", type=int, help="seed of the tpe/random sampler (reproducible runs)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage: a journal file path (resumable), or postgresql://... "
        "(shared by several machines); default: in memory",
    )
    p.add_argument(
        "--study", metavar="NAME", help="study name (default <strategy>-<SYMBOL>-<objective>)"
    )
    p.add_argument("--config", help="YAML config for the broker, risk and pnl sections")
    p.add_argument("--cash", type=float, help="starting cash (default: state.starting_cash)")
    p.add_argument(
        "--results",
        metavar="DIR",
        help="folder for the study's JSON (default: studies/ beside "
        "storage.db_path, i.e. data/runtime/studies)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


@dataclasses.dataclass
class Prepared:
    """A search checked and ready: its spec, the strategy class, the parsed data, where its
    results go and the starting cash."""

    spec: SearchSpec
    cls: type[Strategy]
    table: Any
    results: Path
    starting_cash: float


def prepare(args: argparse.Namespace, *, study_suffix: str = "") -> Prepared:
    """Everything checked before a worker starts: config, strategy, space, objective, data."""
    from engine.backtest import backtest_config
    from engine.cli.run import parse_params
    from engine.config import load_config
    from engine.research.optuna_study import SearchSpec, default_study_name
    from engine.research.search import (
        check_corners,
        format_params,
        parse_space,
        refusal,
        resolve_objective,
    )
    from engine.research.studies import studies_dir
    from engine.research.trials import RunSetup, load_table
    from engine.strategy_host import resolve_strategy_class

    config = load_config(args.config) if args.config else None
    cls = resolve_strategy_class(args.strategy)
    fixed = parse_params(args.param)
    known = sorted(set(cls.param) - {"name", "symbols"})
    unknown = sorted(set(fixed) - set(known))
    if unknown:
        raise ConfigError(
            f"--param {unknown[0]}: strategy {cls.__name__} has no such parameter "
            f"(known: {', '.join(known)})"
        )
    space = parse_space(args.space, cls, fixed)
    objective = resolve_objective(args.objective, args.direction)
    refused = check_corners(cls, space, fixed)
    if refused:
        params, reason = refused[0]
        print(
            f"seamless {args.command}: note: the strategy refuses part of the space "
            f"({len(refused)} corner(s), e.g. {format_params(params)}: {reason}); such trials "
            "are recorded as failed and not run",
            file=sys.stderr,
        )
    elif not space and (why := refusal(cls, fixed)) is not None:
        raise ConfigError(f"--param: {why}")
    symbol = args.symbol.upper()
    table = load_table(args.data, symbol)  # also what the workers do: a bad file fails here
    if table.count == 0:
        raise ConfigError(f"--data {args.data!r}: no rows")
    cfg = backtest_config(config, starting_cash=args.cash)
    setup = RunSetup(
        data=args.data,
        symbol=symbol,
        strategy=args.strategy,
        fixed=fixed,
        objective=objective,
        config=config,
        starting_cash=args.cash,
    )
    name = args.study or default_study_name(args.strategy, symbol, objective.name) + study_suffix
    spec = SearchSpec(
        setup=setup,
        space=space,
        trials=args.trials,
        sampler=args.sampler,
        seed=args.seed,
        storage=args.storage,
        study=name,
    )
    if args.sampler == "grid":
        for dim in space.values():
            dim.grid()  # ConfigError for a float range without a step, before anything starts
    results = Path(args.results) if args.results else studies_dir(config)
    return Prepared(spec, cls, table, results, cfg.state.starting_cash)
