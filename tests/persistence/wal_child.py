"""Child for the WAL-corruption test: appends critical events (each acknowledged, i.e. durable)
and non-critical ones, prints the acknowledged seqs, then dies without closing (as a kill -9
would). With ``stored`` (the default) it first has every row moved into DuckDB, leaving them
in DuckDB's write-ahead log; with ``journal`` it never lets the log move any in, so they are
only in the event journal. Usage: python -m ... PATH COUNT [stored|journal]"""

from __future__ import annotations

import os
import sys

from persistence import EventLog
from streams.events import TickReceived, TradeExecuted


def main() -> None:
    path, count = sys.argv[1], int(sys.argv[2])
    stored = (sys.argv[3] if len(sys.argv) > 3 else "stored") == "stored"
    # flush_interval_s: how long a journaled row waits to be moved into DuckDB.
    log = EventLog(path, flush_interval_s=0.05 if stored else 3600.0).open()
    for i in range(count):
        log.append(TickReceived(symbol="AAPL", last=100.0 + i, ts_event=i + 1))
        fill = TradeExecuted(
            fill_id=f"f{i}",
            order_id=f"o{i}",
            strategy="s",
            symbol="AAPL",
            side="buy",
            qty=1.0,
            price=100.0 + i,
            event_id=f"fill-{i}",
            ts_event=i + 1,
        )
        kept = log.append(fill, wait=True)
        assert kept is not None
        print(kept.seq, kept.event_id, flush=True)
    if stored:
        log.flush()
    os._exit(0)  # no close, no checkpoint: like a crash


if __name__ == "__main__":
    main()
