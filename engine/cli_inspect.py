"""``seamless events`` and ``seamless state``: read an event log that no engine holds open."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from persistence import EventLog, restore
from state import state_to_dict
from streams.clock import ns_to_datetime
from streams.errors import PersistenceError


def show_events(
    db: str, out: TextIO, *, topic: str | None, since: int, limit: int | None, as_json: bool
) -> int:
    """Print events after seq ``since`` matching ``topic``; returns how many were printed."""
    _require_file(db)
    with EventLog(db) as log:
        events = log.read(since_seq=since, topic=topic, limit=limit)
    for event in events:
        if as_json:
            out.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
        else:
            when = ns_to_datetime(event.ts_event).isoformat() if event.ts_event else "-"
            fields = " ".join(f"{k}={v}" for k, v in event.payload().items())
            out.write(f"{event.seq:>8} {when:<32} {event.type:<24} {event.topic:<22} {fields}\n")
    return len(events)


def show_state(db: str, out: TextIO, *, at: int | None, as_json: bool) -> int:
    """Print the state restored as of seq ``at`` (time travel), or the latest; returns its seq."""
    _require_file(db)
    with EventLog(db) as log:
        result = restore(log, upto_seq=at)
    state = state_to_dict(result.state)
    if as_json:
        out.write(json.dumps({"seq": result.seq, "state": state}, sort_keys=True) + "\n")
        return result.seq
    out.write(
        f"state as of seq {result.seq} (snapshot {result.snapshot_seq}, "
        f"{result.replayed} events replayed)\n"
    )
    account = state["account"]
    out.write(
        f"cash {account['cash']:.2f}  realized {account['realized_pnl']:.2f}  "
        f"commissions {account['commissions']:.2f}\n"
    )
    pnl = state["pnl"]
    out.write(
        f"equity {pnl['equity']:.2f}  daily {pnl['daily']:.2f}  "
        f"max drawdown {pnl['max_drawdown']:.2f}\n"
    )
    out.write(f"trading {state['trading']['state']}  runner {state['runner']}\n")
    for symbol, pos in sorted(state["positions"].items()):
        out.write(
            f"  {symbol:<8} qty {pos['qty']:>12.4f}  avg {pos['avg_price']:>10.4f}  "
            f"realized {pos['realized_pnl']:>10.2f}\n"
        )
    return result.seq


def _require_file(db: str) -> None:
    if not Path(db).is_file():
        raise PersistenceError(f"no event log file at {db!r}")
