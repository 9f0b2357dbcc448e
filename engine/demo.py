"""A short end-to-end demonstration of the engine: ``seamless demo``.

Builds the kernel in replay mode over the bundled daily bars of AAPL and MSFT (an SMA crossover
on each, the paper broker in memory), replays them at full speed through the threaded engine
into a new DuckDB event log, stops cleanly (final snapshot), reopens the file, restores the
state (snapshot + replay) and prints a summary: the restored state must equal both the live
one and a full replay of the log. A smoke test of an installation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TextIO

from engine.config import (
    BrokerConfig,
    FeedConfig,
    RunnerConfig,
    SeamlessConfig,
    StorageConfig,
    StrategyConfig,
)
from engine.kernel import Kernel, Mode
from persistence import EventLog, full_replay, restore
from state import state_to_dict
from streams import topics

SYMBOLS = ("AAPL", "MSFT")


def demo_config(db_path: Path) -> SeamlessConfig:
    """The demo's config: a full-speed, one-pass replay of the sample bars of two symbols."""
    return SeamlessConfig(
        storage=StorageConfig(db_path=str(db_path)),
        feed=FeedConfig(kind="sample", symbols=SYMBOLS, speed=0.0, loop=False),
        strategies=tuple(
            StrategyConfig(
                name=f"sma_{symbol.lower()}",
                strategy="sma_crossover",
                symbols=(symbol,),
                params={"fast": 10, "slow": 30, "qty": 100.0},
            )
            for symbol in SYMBOLS
        ),
        broker=BrokerConfig(account_path=""),
        runner=RunnerConfig(heartbeat_interval_s=0.5),
    )


def run_demo(db_path: str | Path, out: TextIO, *, timeout_s: float = 120.0) -> dict[str, object]:
    """Write a session to ``db_path`` (replacing it), restore it, print and return a summary."""
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".journal")):
        stale.unlink(missing_ok=True)

    kernel = Kernel(demo_config(path), mode=Mode.REPLAY).start()
    deadline = time.monotonic() + timeout_s
    try:
        while not kernel.data_finished and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        kernel.stop()
    live = state_to_dict(kernel.store.get_state())

    with EventLog(path) as log:
        restored = restore(log)
        replayed = full_replay(log)
        count = log.count()
        fills = sum(1 for _ in log.read(topic=topics.ALL_FILLS))
    summary: dict[str, object] = {
        "db": str(path),
        "events": count,
        "fills": fills,
        "last_seq": restored.seq,
        "restored_from_snapshot_seq": restored.snapshot_seq,
        "replayed_after_snapshot": restored.replayed,
        "restore_equals_live": state_to_dict(restored.state) == live,
        "restore_equals_full_replay": restored.state == replayed,
        "state": state_to_dict(restored.state),
    }
    out.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
