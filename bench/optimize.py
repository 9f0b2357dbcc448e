"""Parameter-search throughput: trials per minute of ``seamless optimize`` on the AAPL sample.

Run: ``python -m bench optimize [--trials N] [--jobs 1 2] [--baseline N] [--json]``.
On the bundled AAPL daily bars (3,270 bars, ``streams.sources.load_sample_bars``), SMA
crossover, ``fast=2:30 slow=10:120`` (TPE, seeded, objective ``net_pnl``), in the same run:

* the baseline: one process parses the bars once and runs ``--baseline`` full-engine backtests
  in a plain loop (``engine.research.trials.run_task``, what a worker does per trial), no
  Optuna, no processes -- the cost of a trial itself, and what one core can do;
* ``engine.research.optimize.run_search`` with ``--jobs`` J worker processes (the code
  ``seamless optimize`` runs), for each J given: trials per minute while trials run (worker
  start-up excluded, as the command prints it), per minute of the whole call, the start-up,
  the time of a trial in its worker and of its bar loop, a trial's CPU time in its worker, the
  parent's CPU per trial, and J x 60 / (trial time) -- the rate if the workers never waited.

The CPU time does not grow when other processes share the cores (the wall times do): J x 60 s /
(CPU time of a trial) is what J idle cores would do.

Prints the machine's load average first: other work on the box slows every figure. Figures
only, no pass/fail (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from typing import Any

from bench import bench_parser, report
from engine.research.optimize import run_search
from engine.research.optuna_study import SearchSpec
from engine.research.pool import TrialPool
from engine.research.search import parse_space, resolve_objective
from engine.research.trials import RunSetup, Task, load_table, run_task
from engine.strategies import SmaCrossover

SPACE = ("fast=2:30", "slow=10:120")


def baseline(setup: RunSetup, trials: int, seed: int) -> dict[str, float]:
    """``trials`` backtests in a plain loop in this process (the data parsed once)."""
    table = load_table(setup.data, setup.symbol)
    rng = random.Random(seed)
    loops: list[float] = []
    started = time.perf_counter()
    cpu = time.process_time()
    for _ in range(trials):
        fast = rng.randint(2, 30)
        slow = rng.randint(max(fast + 1, 10), 120)
        result = run_task(setup, table, Task({"fast": fast, "slow": slow}))
        loops.append(result["bar_loop_s"])
    wall = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    return {
        "trials": trials,
        "cpu_ms": cpu_s / trials * 1000,
        "wall_s": wall,
        "per_min": trials / wall * 60,
        "trial_ms": wall / trials * 1000,
        "loop_ms": sum(loops) / len(loops) * 1000,
        "bars": table.count,
    }


def search(setup: RunSetup, jobs: int, trials: int, seed: int) -> dict[str, float]:
    """``run_search`` with ``jobs`` worker processes, the pool started inside the timing."""
    space = parse_space(list(SPACE), SmaCrossover)
    spec = SearchSpec(setup, space, trials=trials, seed=seed, study=f"bench-{jobs}")
    started = time.perf_counter()
    with TrialPool(setup, jobs) as pool:
        cpu = time.process_time()
        outcome = run_search(spec, pool, SmaCrossover)
        parent_cpu = time.process_time() - cpu
    wall = time.perf_counter() - started
    trials = outcome.ran + outcome.refused
    return {
        "jobs": jobs,
        "ran": outcome.ran,
        "refused": outcome.refused,
        "per_min": outcome.rate_per_min,
        "wall_per_min": trials / wall * 60,
        "startup_s": outcome.startup_s,
        "trial_ms": outcome.mean_trial_s * 1000,
        "cpu_ms": outcome.mean_trial_cpu_s * 1000,
        "parent_ms": parent_cpu / trials * 1000 if trials else 0.0,
        "loop_ms": outcome.mean_backtest_s * 1000,
        "ideal_per_min": jobs * 60 / outcome.mean_trial_s if outcome.mean_trial_s else 0.0,
        "best": outcome.best_value or float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("optimize", __doc__)
    parser.add_argument("--trials", type=int, default=200, help="trials per search run")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--baseline", type=int, default=20, help="backtests in the plain loop")
    parser.add_argument("--seed", type=int, default=1)
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline, then a search per ``--jobs`` value; print them, return the figures."""
    setup = RunSetup("sample", "AAPL", "sma_crossover", {}, resolve_objective("net_pnl"))
    load = os.getloadavg()
    print(
        f"parameter search, AAPL sample, SMA crossover {' '.join(SPACE)}, TPE seed {args.seed}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs"
    )
    base = baseline(setup, args.baseline, args.seed)
    figures: dict[str, Any] = {
        "load_average": list(load),
        "cpus": os.cpu_count(),
        "baseline": base,
        "searches": [],
    }
    print(
        f"baseline: {base['trials']} backtests of {base['bars']:,} bars in a plain loop: "
        f"{base['per_min']:.0f} trials/min on one core ({base['trial_ms']:.0f} ms a trial, "
        f"{base['loop_ms']:.0f} ms of it the bar loop, {base['cpu_ms']:.0f} ms of CPU)"
    )
    print(
        f"{'jobs':>4} {'trials':>6} {'per min':>8} {'wall/min':>9} {'start-up':>9} "
        f"{'trial ms':>9} {'loop ms':>8} {'cpu ms':>7} {'parent ms':>10} {'ideal/min':>10}"
    )
    for jobs in args.jobs:
        row = search(setup, jobs, args.trials, args.seed)
        figures["searches"].append(row)
        print(
            f"{jobs:>4} {row['ran'] + row['refused']:>6.0f} {row['per_min']:>8.0f} "
            f"{row['wall_per_min']:>9.0f} {row['startup_s']:>8.1f}s {row['trial_ms']:>9.0f} "
            f"{row['loop_ms']:>8.0f} {row['cpu_ms']:>7.0f} {row['parent_ms']:>10.1f} "
            f"{row['ideal_per_min']:>10.0f}"
        )
    print(
        "per min: trials while trials run (start-up excluded: what seamless optimize prints); "
        "wall/min: over the whole call; trial/loop ms: wall time of a trial in its worker and "
        "of its bar loop; cpu ms: a trial's CPU time in its worker; parent ms: the parent's CPU "
        "(Optuna, dispatch) per trial; ideal: jobs x 60 s / the trial time in a worker"
    )
    return figures


if __name__ == "__main__":
    main()
