"""Child process for the crash test: appends critical events with wait=True forever and
prints each acknowledged seq (flushed), until the parent SIGKILLs it.

Usage: python -m tests.persistence.crash_child PATH RUN_TAG
(PATH a DuckDB file, or a ``postgresql://`` DSN for the PostgreSQL recorder.)
"""

from __future__ import annotations

import sys

from persistence import EventLog
from persistence.pg import PostgresEventLog
from streams.events import CashAdjusted, TickReceived, TradeExecuted


def main() -> None:
    path, tag = sys.argv[1], sys.argv[2]
    log: EventLog | PostgresEventLog = (
        PostgresEventLog(path, flush_interval_s=0.01)
        if path.startswith("postgresql://")
        else EventLog(path, flush_interval_s=0.01)
    )
    with log:
        print("ready", log.last_seq, flush=True)
        i = 0
        while True:
            i += 1
            log.append(TickReceived(symbol="AAPL", bid=100.0 + i % 10, ask=100.5 + i % 10))
            event = (
                TradeExecuted(
                    fill_id=f"{tag}-{i}",
                    order_id=f"{tag}-{i}",
                    strategy="crash",
                    symbol="AAPL",
                    side="buy" if i % 3 else "sell",
                    qty=1.0,
                    price=100.0 + i % 10,
                    event_id=f"{tag}-{i}",
                )
                if i % 2
                else CashAdjusted(amount=1.0, reason=f"{tag}-{i}", event_id=f"{tag}-{i}")
            )
            stored = log.append(event, wait=True)
            assert stored is not None
            print(stored.seq, stored.event_id, flush=True)


if __name__ == "__main__":
    main()
