"""Time travel: the cost of one step of the Analytics tab's seq slider (``Kernel.state_at``).

Run: ``python -m bench time_travel [--events N] [--rate R] [--every M ...] [--json]``. Goal: a
step under 300 ms on a 1,000,000-event log. In a temporary folder (removed at the end):

* **build** -- the full engine (``Kernel`` in backtest mode: SMA crossover, broker, risk,
  positions, P&L, state store) writes ``N`` real events (bars, signals, orders, fills,
  positions, P&L) into a DuckDB event log. Its ``Snapshotter`` snapshots as the engine's
  does: every ``storage.snapshot_interval_s`` (300 s) of a modelled wall clock on which the
  engine writes ``R`` events/s (default 500, the load bench's feed), every
  ``storage.snapshot_every_events`` (5,000) events, and on the clean stop;
* **baseline** (same run) -- a full replay from seq 0 (``persistence.full_replay``) up to the
  middle and the end of the log, compared with ``state_at`` there;
* **steps** -- ``state_at`` on a reopened log at seeded random seqs (what a user dragging the
  slider asks for): p50 / p95 / max, the tail each replayed, and where a step's time goes
  (snapshot load, SQL fetch, decode, fold) for the longest tail;
* **tail sweep** -- restore time against tail length from one snapshot, per tail event, and
  the longest tail that fits in 300 ms (interpolated);
* **every M events** -- the same steps after adding a snapshot every ``M`` events (a sparser
  or denser count than the config's), with what such a snapshot costs to save and to store.

Figures only, no pass/fail (see docs/benchmarks.md, "Time travel").
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench import bench_parser, report
from engine.backtest import backtest_config
from engine.kernel import Kernel, Mode
from persistence import EventLog, full_replay, restore
from state import fold, model
from streams.clock import NS_PER_S, ManualClock
from streams.events import BarReceived
from streams.sources import load_replay_table
from testkit.measure import percentile
from testkit.workload import make_bars

SYMBOL = "BENCH"
GOAL_S = 0.300
SPREAD = (("p50", 50), ("p95", 95), ("max", 100))
CHUNK_BARS = 50_000
PARAMS = {"fast": 10, "slow": 30, "qty": 100.0}


def _bars(seed: int) -> Iterator[BarReceived]:
    """Endless one-minute bars, generated in chunks that follow each other in time."""
    start = pd.Timestamp("2024-01-02 09:30", tz="UTC")
    price, k = 100.0, 0
    while True:
        frame = make_bars(CHUNK_BARS, seed + k, start_price=price)
        frame["timestamp"] = pd.date_range(start, periods=len(frame), freq="1min")
        start = frame["timestamp"].iloc[-1] + pd.Timedelta(minutes=1)
        price = float(frame["close"].iloc[-1])
        k += 1
        table = load_replay_table(frame, kind="bars", symbol=SYMBOL)
        for event in table.events(source="bench"):
            assert isinstance(event, BarReceived)
            yield event


def build(path: Path, n: int, rate: float, seed: int) -> tuple[list[int], float]:
    """Write ``n`` engine events into ``path``; the snapshot seqs and the build time."""
    config = backtest_config(strategy="sma_crossover", symbol=SYMBOL, params=PARAMS)
    interval_s = config.storage.snapshot_interval_s
    bars = _bars(seed)
    first = next(bars)
    kernel = Kernel(
        config,
        mode=Mode.BACKTEST,
        clock=ManualClock(first.ts_event - NS_PER_S),
        journal=EventLog(path, batch_size=50_000).open(),
    )
    snapshotter = kernel.snapshotter
    assert snapshotter is not None  # an event log is a Recorder: the kernel snapshots it
    started = time.perf_counter()
    kernel.start()
    publish, last_seq = kernel.bus.publish, lambda: kernel.store.last_seq
    ns_per_event = NS_PER_S / rate
    wall0 = 1_700_000_000 * NS_PER_S
    snapshotter.maybe_snapshot(wall0)  # the first call starts its clock, as housekeeping's does
    publish(first)
    for bar in bars:
        publish(bar)
        seq = last_seq()
        # the engine's own schedule, on a wall clock where it writes ``rate`` events per second
        snapshotter.maybe_snapshot(wall0 + int(seq * ns_per_event))
        if seq >= n:
            break
    kernel.stop()  # a clean stop: everything flushed, the final snapshot taken
    elapsed = time.perf_counter() - started
    print(
        f"built {seq:,} events in {elapsed:.1f} s ({seq / elapsed:,.0f} events/s) through the "
        f"engine; snapshots every {interval_s:.0f} s at {rate:,.0f} events/s "
        f"(every {interval_s * rate:,.0f} events) and every "
        f"{config.storage.snapshot_every_events:,} events"
    )
    with EventLog(path) as log:
        snaps = sorted(s.seq for s in log.iter_snapshots())
    print(f"{len(snaps):,} snapshots, the last at seq {snaps[-1]:,}" if snaps else "no snapshots")
    return snaps, elapsed


def _ms(values: list[float]) -> str:
    p50, p95, top = (percentile(values, q) * 1e3 for q in (50, 95, 100))
    return f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {top:7.1f} ms"


def _ms_figures(values: list[float]) -> dict[str, float]:
    """p50, p95 and max of ``values`` (seconds) in ms, for ``--json``."""
    return {f"{name}_ms": percentile(values, q) * 1e3 for name, q in SPREAD}


def steps(kernel: Kernel, targets: list[int], label: str) -> list[float]:
    """Time ``state_at`` at each target; print the distribution and the tails."""
    times, tails = [], []
    for target in targets:
        t0 = time.perf_counter()
        found = kernel.state_at(target)
        times.append(time.perf_counter() - t0)
        tails.append(found["replayed"])
    within = sum(t < GOAL_S for t in times)
    print(
        f"{label:<34} {_ms(times)}  tail mean {statistics.fmean(tails):>9,.0f} "
        f"max {max(tails):>9,}  under 300 ms: {within}/{len(times)}"
    )
    return times


def breakdown(log: EventLog, snapshot_seq: int, target: int) -> None:
    """Where one step's time goes: snapshot load, SQL fetch, decode into events, fold."""
    t0 = time.perf_counter()
    base = restore(log, upto_seq=snapshot_seq)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    log.read_df(since_seq=snapshot_seq, until_seq=target)
    fetch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batches = list(log.iter_batches(since_seq=snapshot_seq, until_seq=target, batch_size=50_000))
    decode_s = max(time.perf_counter() - t0 - fetch_s, 1e-9)
    t0 = time.perf_counter()
    state = base.state
    for batch in batches:
        state = fold.replay(batch, state)
    fold_s = max(time.perf_counter() - t0, 1e-9)
    tail = sum(len(b) for b in batches)
    total = load_s + fetch_s + decode_s + fold_s
    print(
        f"  the longest tail, {tail:,} events after the snapshot at {snapshot_seq:,}: "
        f"{total * 1e3:,.0f} ms = snapshot load {load_s * 1e3:.1f} ms + SQL fetch "
        f"{fetch_s * 1e3:,.0f} ms + decode {decode_s * 1e3:,.0f} ms "
        f"({tail / decode_s:,.0f} events/s, {decode_s / total:.0%}) + fold "
        f"{fold_s * 1e3:,.0f} ms ({tail / fold_s:,.0f} events/s, {fold_s / total:.0%})"
    )


def sweep(log: EventLog, snaps: list[int], last: int) -> float:
    """Restore time against tail length from the snapshot with the most room after it."""
    bounds = [*snaps, last + 1]
    gaps = [(bounds[i + 1] - s, s) for i, s in enumerate(snaps)]
    room, base = max(gaps) if gaps else (last, 0)
    points: list[tuple[int, float]] = []
    for tail in (0, 2_000, 5_000, 10_000, 20_000, 50_000):
        if tail >= room:
            break
        runs = []
        for _ in range(3 if tail <= 10_000 else 1):
            t0 = time.perf_counter()
            restore(log, upto_seq=base + tail)
            runs.append(time.perf_counter() - t0)
        points.append((tail, min(runs)))
    print(f"  from the snapshot at {base:,}; tail: restore (best of 3 up to 10,000 events)")
    for tail, secs in points:
        per = f"{(secs - points[0][1]) / tail * 1e6:6.1f} us per tail event" if tail else ""
        print(f"  {tail:>7,}  {secs * 1e3:8.1f} ms  {per}")
    longest = 0.0
    for (t0, s0), (t1, s1) in itertools.pairwise(points):
        if s0 <= GOAL_S < s1:
            longest = t0 + (t1 - t0) * (GOAL_S - s0) / (s1 - s0)
    if points and points[-1][1] <= GOAL_S:
        longest = float(points[-1][0])
        print(f"  every measured tail fits in 300 ms (up to {longest:,.0f} events)")
    else:
        print(f"  a 300 ms step allows a tail of ~{longest:,.0f} events (interpolated)")
    return longest


def states_every(log: EventLog, spacings: list[int]) -> dict[int, dict[str, Any]]:
    """One fold over the log: the state (as saved) at every multiple of each spacing."""
    state = model.initial_state()
    states: dict[int, dict[str, Any]] = {}
    for batch in log.iter_batches(batch_size=50_000):
        for event in batch:
            state = fold.apply(state, event)
            if any(event.seq % n == 0 for n in spacings):
                states[event.seq] = model.state_to_dict(state)
    return states


def add_snapshots(log: EventLog, states: dict[int, dict[str, Any]], every: int) -> int:
    """Save the snapshots a Snapshotter taking one every ``every`` events would have left
    (those not saved already); print what saving them cost."""
    saves: list[float] = []
    sizes: list[int] = []
    have = {s.seq for s in log.iter_snapshots()}
    for seq in sorted(states):
        if seq % every or seq in have:
            continue
        t0 = time.perf_counter()
        log.save_snapshot(seq, model.SCHEMA_VERSION, states[seq])
        saves.append(time.perf_counter() - t0)
        sizes.append(len(json.dumps(states[seq])))
    if saves:
        print(
            f"saved {len(saves)} more snapshots: save {_ms(saves)}; "
            f"~{statistics.fmean(sizes) / 1e3:.1f} kB of JSON each"
        )
    return len(saves)


def main(argv: list[str] | None = None) -> None:
    """Print the figures (no pass/fail)."""
    parser = bench_parser("time_travel", __doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log")
    parser.add_argument(
        "--rate", type=float, default=500.0, help="events/s the modelled live engine writes"
    )
    parser.add_argument(
        "--every",
        type=int,
        nargs="+",
        default=[10_000, 5_000],
        help="snapshot spacings (events) to compare",
    )
    parser.add_argument("--steps", type=int, default=20, help="random slider positions")
    parser.add_argument("--seed", type=int, default=7)
    report(parser.parse_args(argv), run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the log, then time the baseline, the steps and the sweep; the figures."""
    figures: dict[str, Any] = {"events": args.events, "baseline": [], "steps": {}}
    with tempfile.TemporaryDirectory(prefix="seamless-bench-") as tmp:
        path = Path(tmp) / "time_travel.duckdb"
        snaps, _ = build(path, args.events, args.rate, args.seed)
        config = backtest_config(strategy="sma_crossover", symbol=SYMBOL, params=PARAMS)
        t0 = time.perf_counter()
        kernel = Kernel(config, mode=Mode.BACKTEST, journal=EventLog(path).open())
        print(f"reopened: kernel built (restore of the latest) in {time.perf_counter() - t0:.2f} s")
        log: EventLog = kernel.log
        try:
            last = log.committed_seq
            rng = random.Random(args.seed)
            targets = [rng.randint(1, last) for _ in range(args.steps)]

            print("\n-- baseline: full replay from seq 0 vs state_at (snapshot + tail)")
            for target in (last // 2, last):
                t0 = time.perf_counter()
                reference = model.state_to_dict(full_replay(log, upto_seq=target))
                full_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                found = kernel.state_at(target)
                step_s = time.perf_counter() - t0
                same = found["state"] == reference
                print(
                    f"seq {target:>9,}: full replay {full_s:6.2f} s ({target / full_s:,.0f} "
                    f"events/s); state_at {step_s * 1e3:7.1f} ms (snapshot "
                    f"{found['snapshot_seq']:,} + {found['replayed']:,}); equal: {same}"
                )
                figures["baseline"].append(
                    {
                        "seq": target,
                        "full_replay_s": full_s,
                        "state_at_ms": step_s * 1e3,
                        "equal": same,
                    }
                )

            print(f"\n-- {args.steps} slider steps at random seqs")
            figures["steps"]["engine"] = _ms_figures(steps(kernel, targets, "engine's snapshots"))
            worst = max(targets, key=lambda t: t - max([0, *[s for s in snaps if s <= t]]))
            breakdown(log, max([0, *[s for s in snaps if s <= worst]]), worst)

            print("\n-- restore time against tail length")
            figures["longest_tail_in_300ms"] = sweep(log, snaps, last)

            spacings = sorted(set(args.every), reverse=True)
            t0 = time.perf_counter()
            states = states_every(log, spacings)
            print(
                f"\n-- with snapshots every N events as well (states at {len(states)} seqs "
                f"folded in {time.perf_counter() - t0:.0f} s)"
            )
            for every in spacings:
                add_snapshots(log, states, every)
                times = steps(kernel, targets, f"+ every {every:,} events")
                figures["steps"][f"every_{every}"] = _ms_figures(times)
        finally:
            kernel.stop()
        size_mb = path.stat().st_size / 1e6
        print(f"\nduckdb file: {size_mb:.0f} MB")
    figures["duckdb_mb"] = size_mb
    return figures


if __name__ == "__main__":
    main()
