"""Child for the WAL-corruption test: appends critical events (each acknowledged, i.e. durable)
and non-critical ones, prints the acknowledged seqs, then dies without closing (as a kill -9
would), leaving the commits in DuckDB's write-ahead log. Usage: python -m ... PATH COUNT"""

from __future__ import annotations

import os
import sys

from persistence import EventLog
from streams.events import TickReceived, TradeExecuted


def main() -> None:
    path, count = sys.argv[1], int(sys.argv[2])
    log = EventLog(path).open()
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
        stored = log.append(fill, wait=True)
        assert stored is not None
        print(stored.seq, stored.event_id, flush=True)
    os._exit(0)  # no close, no checkpoint: like a crash


if __name__ == "__main__":
    main()
