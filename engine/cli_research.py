"""``seamless optimize`` and ``seamless walkforward``: parameter search with Optuna over
full-engine backtests in worker processes, and walk-forward analysis on top of it.

See :mod:`engine.research.optimize` (trials, seeds, resuming and sharing a study),
:mod:`engine.research.walkforward` (windows, warm-up, stitching) and
:mod:`engine.research.studies` (where results are kept), and docs/strategies.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli import positive_int
from streams.errors import ConfigError

if TYPE_CHECKING:
    from engine.research.optimize import SearchOutcome, SearchSpec
    from engine.strategy import Strategy


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``optimize`` and ``walkforward`` on the ``seamless`` parser."""
    opt = sub.add_parser(
        "optimize",
        help="search a strategy's parameters with Optuna (full-engine backtests, J processes)",
    )
    _search_args(opt)
    wf = sub.add_parser(
        "walkforward",
        help="optimize on each training window, test the choice on the window after it",
    )
    _search_args(wf)
    wf.add_argument(
        "--train-bars",
        type=positive_int,
        required=True,
        metavar="N",
        help="bars in each training window",
    )
    wf.add_argument(
        "--test-bars",
        type=positive_int,
        required=True,
        metavar="M",
        help="bars in each test window (and the step from one segment to the next)",
    )
    wf.add_argument(
        "--anchored",
        action="store_true",
        help="every training window starts at the first bar (default: rolling)",
    )
    wf.add_argument(
        "--warmup",
        default="auto",
        metavar="N|auto",
        help="bars before a test window fed to its backtest, not counted (default "
        "auto: the largest whole-number parameter, e.g. slow)",
    )
    wf.add_argument(
        "--out", metavar="F", help="the HTML report (default: <results>/<study>.walkforward.html)"
    )


def _search_args(p: argparse.ArgumentParser) -> None:
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


def dispatch(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``optimize`` or ``walkforward``."""
    if args.command == "optimize":
        return _optimize(args, out)
    if args.command == "walkforward":
        return _walkforward(args, out)
    raise ConfigError(f"unknown command {args.command!r}")


@dataclasses.dataclass
class _Prepared:
    spec: SearchSpec
    cls: type[Strategy]
    table: Any
    results: Path
    starting_cash: float


def _prepare(args: argparse.Namespace, *, study_suffix: str = "") -> _Prepared:
    """Everything checked before a worker starts: config, strategy, space, objective, data."""
    from engine.backtest import backtest_config
    from engine.cli_engine import parse_params
    from engine.config import load_config
    from engine.research.optimize import SearchSpec, default_study_name
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
    return _Prepared(spec, cls, table, results, cfg.state.starting_cash)


# -- optimize --------------------------------------------------------------------------------------
def _optimize(args: argparse.Namespace, out: TextIO) -> int:
    from engine.research.optimize import ProgressBar, StopFlag, TrialPool, run_search
    from engine.research.studies import study_file, write_json

    prep = _prepare(args)
    spec = prep.spec
    progress = ProgressBar(sys.stderr, spec.objective.name)
    with StopFlag() as stop, TrialPool(spec.setup, args.jobs) as pool:
        outcome = run_search(spec, pool, prep.cls, progress=progress, stop=stop)
    payload = study_payload(args, spec, outcome)
    path = write_json(study_file(prep.results, spec.study), payload)
    print(f"seamless optimize: {outcome.rate_line(args.jobs)}", file=sys.stderr)
    if args.json:
        out.write(json.dumps({**payload, **_speed(outcome), "results": str(path)}) + "\n")
    else:
        _print_outcome(out, args, spec, outcome, path)
    if outcome.interrupted:
        best = (
            f"best so far {spec.objective.name} {outcome.best_value} at trial "
            f"#{outcome.best_trial}: {outcome.best_params}"
            if outcome.best_params is not None
            else "no trial completed"
        )
        print(
            f"seamless optimize: interrupted: {outcome.trials} trials kept in study "
            f"{spec.study!r} ({outcome.storage}); {best}",
            file=sys.stderr,
        )
        return 130
    if outcome.best_params is None:
        raise ConfigError(
            f"no trial completed ({outcome.failed} failed)"
            + (f"; the first: {outcome.first_error}" if outcome.first_error else "")
        )
    return 0


def study_payload(
    args: argparse.Namespace, spec: SearchSpec, outcome: SearchOutcome
) -> dict[str, Any]:
    """The study file's content (and ``--json``'s): arguments, best trial, every trial."""
    setup = spec.setup
    return {
        "kind": "optimize",
        "study": spec.study,
        "storage": outcome.storage,
        "strategy": setup.strategy,
        "symbol": setup.symbol,
        "data": setup.data,
        "config": args.config,
        "cash": args.cash,
        "objective": outcome.objective,
        "direction": outcome.direction,
        "sampler": spec.sampler,
        "seed": spec.seed,
        "space": {name: dim.to_dict() for name, dim in spec.space.items()},
        "fixed": setup.fixed,
        "rows": [spec.start, spec.stop],
        "best_params": outcome.best_params,
        "best_value": outcome.best_value,
        "best_trial": outcome.best_trial,
        "trials": outcome.trials,
        "complete": outcome.complete,
        "failed": outcome.failed,
        "interrupted": outcome.interrupted,
        "rerun": rerun_command(args, setup.fixed, outcome.best_params),
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "table": outcome.table,
    }


def _speed(outcome: SearchOutcome) -> dict[str, Any]:
    figures = outcome.to_json()
    keys = (
        "ran",
        "refused",
        "elapsed_s",
        "trial_phase_s",
        "startup_s",
        "mean_backtest_s",
        "mean_trial_s",
        "mean_trial_cpu_s",
        "rate_per_min",
    )
    return {k: figures[k] for k in keys}


def rerun_command(
    args: argparse.Namespace, fixed: Mapping[str, Any], best: Mapping[str, Any] | None
) -> str | None:
    """The ``seamless backtest`` that reproduces the best trial (same data, config, cash)."""
    if best is None:
        return None
    parts = [
        "seamless",
        "backtest",
        "--data",
        args.data,
        "--symbol",
        args.symbol.upper(),
        "--strategy",
        args.strategy,
    ]
    if args.config:
        parts += ["--config", args.config]
    if args.cash is not None:
        parts += ["--cash", repr(args.cash)]
    for key, value in {**fixed, **best}.items():
        parts += ["--param", f"{key}={_yaml_scalar(value)}"]
    return shlex.join(parts)


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _print_outcome(
    out: TextIO, args: argparse.Namespace, spec: SearchSpec, outcome: SearchOutcome, path: Path
) -> None:
    refused = f" ({outcome.refused} refused by the strategy in this run)" if outcome.refused else ""
    out.write(
        f"study {spec.study} ({outcome.storage}): {outcome.trials} trials, "
        f"{outcome.complete} complete, {outcome.failed} failed{refused}\n"
    )
    if outcome.best_params is None:
        return
    direction = "highest" if outcome.direction == "maximize" else "lowest"
    params = ", ".join(f"{k}={v}" for k, v in outcome.best_params.items())
    out.write(
        f"best ({direction}) {outcome.objective} {outcome.best_value:.6g} at trial "
        f"#{outcome.best_trial}: {params}\n"
    )
    complete = [r for r in outcome.table if r["state"] == "COMPLETE"]
    complete.sort(key=lambda r: r["value"], reverse=outcome.direction == "maximize")
    names = list(spec.space)
    out.write(f"  {'#':>5} {outcome.objective:>14} " + " ".join(f"{n:>10}" for n in names) + "\n")
    for row in complete[:10]:
        values = " ".join(f"{_cell(row['params'].get(n)):>10}" for n in names)
        out.write(f"  {row['number']:>5} {row['value']:>14.6g} {values}\n")
    out.write(f"re-run: {rerun_command(args, spec.setup.fixed, outcome.best_params)}\n")
    out.write(f"results: {path}\n")


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# -- walk-forward ----------------------------------------------------------------------------------
def _walkforward(args: argparse.Namespace, out: TextIO) -> int:
    from engine.research.optimize import ProgressBar, StopFlag, TrialPool
    from engine.research.studies import study_file, write_json
    from engine.research.walkforward import (
        plan_segments,
        run_walkforward,
        write_walkforward_report,
    )

    warmup = _warmup(args.warmup)
    suffix = f"-wf{args.train_bars}x{args.test_bars}{'a' if args.anchored else ''}"
    prep = _prepare(args, study_suffix=suffix)
    spec = prep.spec
    plan = plan_segments(prep.table.count, args.train_bars, args.test_bars, anchored=args.anchored)
    progress = ProgressBar(sys.stderr, spec.objective.name)
    results = prep.results

    def on_segment(record: dict[str, Any], search: SearchOutcome) -> None:
        seg_spec = dataclasses.replace(
            spec,
            study=record["study"],
            start=record["rows"]["train"][0],
            stop=record["rows"]["train"][1],
        )
        write_json(study_file(results, seg_spec.study), study_payload(args, seg_spec, search))
        ins, oos = record["in_sample"], record["out_of_sample"]
        print(
            f"segment {record['index']}/{len(plan)}: train {record['train_start'][:10]}.."
            f"{record['train_end'][:10]}, test {record['test_start'][:10]}.."
            f"{record['test_end'][:10]}: {record['params']} {spec.objective.name} "
            f"IS {_short(ins.get('objective'))} OOS {_short(oos.get('objective'))}",
            file=sys.stderr,
        )

    with StopFlag() as stop, TrialPool(spec.setup, args.jobs) as pool:
        outcome = run_walkforward(
            spec,
            prep.table,
            plan,
            pool,
            prep.cls,
            warmup=warmup,
            starting_cash=prep.starting_cash,
            progress=progress,
            stop=stop,
            on_segment=on_segment,
        )
    ran = sum(s.ran for s in outcome.searches)
    phase = sum(s.trial_phase_s for s in outcome.searches)
    rate = ran / phase * 60 if phase > 0 else 0.0
    print(
        f"seamless walkforward: {ran} trials in {phase:.1f} s of search: {rate:.0f} trials/min "
        f"with {args.jobs} worker{'s' if args.jobs != 1 else ''}",
        file=sys.stderr,
    )
    payload = {
        "kind": "walkforward",
        "study": spec.study,
        "storage": outcome.searches[0].storage if outcome.searches else None,
        "strategy": spec.setup.strategy,
        "symbol": spec.setup.symbol,
        "data": spec.setup.data,
        "objective": spec.objective.name,
        "direction": spec.objective.direction,
        "sampler": spec.sampler,
        "seed": spec.seed,
        "trials": spec.target(),
        "space": {name: dim.to_dict() for name, dim in spec.space.items()},
        "fixed": spec.setup.fixed,
        "train_bars": args.train_bars,
        "test_bars": args.test_bars,
        "anchored": args.anchored,
        "warmup": args.warmup,
        "starting_cash": prep.starting_cash,
        "stitching": "returns chained from the starting cash",
        "interrupted": outcome.interrupted,
        "segments": outcome.segments,
        "stitched": outcome.stitched,
        "rate_per_min": round(rate, 1),
    }
    path = write_json(study_file(results, spec.study, ".walkforward.json"), payload)
    report = None
    if outcome.segments:
        report = write_walkforward_report(
            payload, args.out or study_file(results, spec.study, ".walkforward.html")
        )
    if args.json:
        out.write(json.dumps({**payload, "results": str(path), "report": str(report)}) + "\n")
    else:
        _print_walkforward(out, spec, payload, path, report)
    if outcome.interrupted:
        print(
            f"seamless walkforward: interrupted after {len(outcome.segments)} of {len(plan)} "
            "segments (finished segments are in the results)",
            file=sys.stderr,
        )
        return 130
    return 0


def _warmup(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--warmup expects a whole number or auto, got {text!r}") from None
    if value < 0:
        raise ConfigError(f"--warmup must be >= 0 or auto, got {value}")
    return value


def _short(value: Any) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _print_walkforward(
    out: TextIO,
    spec: SearchSpec,
    payload: Mapping[str, Any],
    path: Path,
    report: Path | None,
) -> None:
    name = spec.objective.name
    out.write(
        f"walk-forward {spec.study}: {len(payload['segments'])} segments, "
        f"{payload['trials']} trials each, objective {name}\n"
    )
    out.write(f"  {'#':>3} {'test window':<23} {'params':<28} {'IS':>12} {'OOS':>12}\n")
    for seg in payload["segments"]:
        params = ", ".join(f"{k}={v}" for k, v in seg["params"].items())
        out.write(
            f"  {seg['index']:>3} {seg['test_start'][:10]}..{seg['test_end'][:10]} "
            f"{params:<28} {_short(seg['in_sample']['objective']):>12} "
            f"{_short(seg['out_of_sample']['objective']):>12}\n"
        )
    st = payload["stitched"]
    if st.get("bars"):
        out.write(
            f"stitched out-of-sample ({st['bars']} bars, returns chained from "
            f"{st['start_equity']:,.2f}): equity {st['end_equity']:,.2f}, return "
            f"{st['return'] * 100:.2f} %, {name} {_short(st.get('objective'))}\n"
        )
    out.write(f"results: {path}\n")
    if report is not None:
        out.write(f"report: {report}\n")
