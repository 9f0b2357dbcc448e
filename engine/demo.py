"""A short end-to-end demonstration of the event-sourced core.

Publishes a small trading session through the bus into a DuckDB event log, stops, reopens the
file, restores the state from the log (snapshot + replay) and prints it. Useful as a smoke test
of an installation: ``seamless demo``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from engine.core import build_core
from persistence import EventLog, Snapshotter, full_replay, restore
from state import state_to_dict
from streams.clock import ManualClock
from streams.events import (
    BUY,
    SELL,
    PositionClosed,
    PositionUpdated,
    TickReceived,
    TradeExecuted,
)

START_NS = 1_700_000_000 * 1_000_000_000


def run_demo(db_path: str | Path, out: TextIO) -> dict[str, object]:
    """Write a session to ``db_path`` (replacing it), restore it, print and return a summary."""
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)

    clock = ManualClock(START_NS)
    with EventLog(path) as log:
        core = build_core(journal=log, clock=clock, threaded=True, starting_cash=100_000.0)
        prices = {"AAPL": 190.0, "MSFT": 410.0}
        for step in range(200):
            clock.advance(1.0)
            for symbol, base in prices.items():
                last = round(base * (1 + 0.001 * ((step * 7 + len(symbol)) % 11 - 5)), 2)
                core.publish(
                    TickReceived(
                        symbol=symbol,
                        bid=last - 0.01,
                        ask=last + 0.01,
                        last=last,
                        size=100,
                        ts_event=clock.now_ns(),
                        source="demo",
                    )
                )
            if step in (20, 120):
                _trade(core, clock, "AAPL", BUY if step == 20 else SELL, 50, prices["AAPL"], step)
        core.bus.join()
        snapshots = Snapshotter(log, lambda: (core.store.snapshot()[0], core.store.snapshot()[2]))
        snapshots.snapshot_now(created_at_ns=clock.now_ns())
        core.publish(
            TickReceived(symbol="MSFT", last=411.0, ts_event=clock.now_ns() + 1, source="demo")
        )
        core.stop()
        live = state_to_dict(core.store.get_state())

    with EventLog(path) as log:
        restored = restore(log)
        replayed = full_replay(log)
        count = log.count()
    summary: dict[str, object] = {
        "db": str(path),
        "events": count,
        "last_seq": restored.seq,
        "restored_from_snapshot_seq": restored.snapshot_seq,
        "replayed_after_snapshot": restored.replayed,
        "restore_equals_live": state_to_dict(restored.state) == live,
        "restore_equals_full_replay": restored.state == replayed,
        "state": state_to_dict(restored.state),
    }
    out.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _trade(
    core, clock: ManualClock, symbol: str, side: str, qty: float, price: float, step: int
) -> None:
    fill = TradeExecuted(
        fill_id=f"demo-fill-{step}",
        order_id=f"demo-order-{step}",
        strategy="demo",
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        commission=1.0,
        ts_event=clock.now_ns(),
    )
    core.publish(fill)
    core.bus.join()
    position = core.store.get_state(f"positions.{symbol}")
    core.publish(
        PositionUpdated(
            symbol=symbol,
            qty=position["qty"],
            avg_price=position["avg_price"],
            realized_pnl=position["realized_pnl"],
            ts_event=clock.now_ns(),
            causation_id=fill.event_id,
        )
    )
    if position["qty"] == 0:
        core.publish(
            PositionClosed(
                symbol=symbol,
                realized_pnl=position["realized_pnl"],
                ts_event=clock.now_ns(),
                causation_id=fill.event_id,
            )
        )
