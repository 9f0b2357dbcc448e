"""``seamless optimize``: search a strategy's parameters with Optuna, full-engine backtests in
worker processes (see :mod:`engine.research.optimize`); print the best trial and keep the
study's JSON (:mod:`engine.research.studies`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli.search import add_search_command, prepare
from streams.errors import ConfigError

if TYPE_CHECKING:
    from engine.research.optimize import SearchOutcome
    from engine.research.optuna_study import SearchSpec


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``optimize`` on the ``seamless`` parser."""
    add_search_command(
        sub,
        "optimize",
        help="search a strategy's parameters with Optuna (full-engine backtests, J processes)",
        handler=_optimize,
    )


def _optimize(args: argparse.Namespace, out: TextIO) -> int:
    from engine.research.optimize import run_search
    from engine.research.pool import ProgressBar, StopFlag, TrialPool
    from engine.research.studies import study_file, write_json

    prep = prepare(args)
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
