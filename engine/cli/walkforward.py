"""``seamless walkforward``: optimize on each training window, test the choice on the window
after it (see :mod:`engine.research.walkforward`: windows, warm-up, stitching); print the
segments, keep each segment's study JSON and the walk-forward's, and write its HTML report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli import positive_int
from engine.cli.optimize import study_payload
from engine.cli.search import add_search_command, prepare
from streams.errors import ConfigError

if TYPE_CHECKING:
    from engine.research.optimize import SearchOutcome
    from engine.research.optuna_study import SearchSpec


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``walkforward`` on the ``seamless`` parser."""
    wf = add_search_command(
        sub,
        "walkforward",
        help="optimize on each training window, test the choice on the window after it",
        handler=_walkforward,
    )
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


def _walkforward(args: argparse.Namespace, out: TextIO) -> int:
    from engine.research.pool import ProgressBar, StopFlag, TrialPool
    from engine.research.studies import study_file, write_json
    from engine.research.walkforward import plan_segments, run_walkforward
    from engine.research.walkforward_report import write_walkforward_report

    warmup = _warmup(args.warmup)
    suffix = f"-wf{args.train_bars}x{args.test_bars}{'a' if args.anchored else ''}"
    prep = prepare(args, study_suffix=suffix)
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
