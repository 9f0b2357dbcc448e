"""``seamless events``, ``seamless state`` and ``seamless verify``: read an event log that no
engine holds open.

``events`` prints its events (a topic pattern, after a seq, at most a number), ``state`` the
state restored from it (as of a seq: time travel).

``verify`` checks the event log's hash chain (see :mod:`persistence.chain`): it reads every
stored event in seq order, in batches (a log of millions of events is never loaded whole),
recomputes each hash from the one before and compares it with the stored one, and compares
the chain head each snapshot recorded. Exit status: 0 and the head hash when the log
is intact; 1 and the first bad seq when a row was changed, deleted, inserted or reordered
(or a snapshot's head does not match); 1 with a one-line error when the log cannot be read
(no such file, a file an engine holds open, a database that cannot be reached); 2 for usage.

A DuckDB file is opened like ``seamless events`` opens it: DuckDB allows one writer and no
reader beside it, so a file an engine holds is refused, naming the engine's PID. A file written
before the hash chain gets it at this open (logged). PostgreSQL logs can be verified while
their engines run (committed rows never change; rows committed after the start are not seen).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

from engine.cli import positive_int
from persistence import EventLog, restore
from persistence.chain import ChainReport
from persistence.recorder import Recorder
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


# -- verify ----------------------------------------------------------------------------------------
def add_verify_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``verify`` on the ``seamless`` parser."""
    verify = sub.add_parser(
        "verify",
        help="check the event log's hash chain: exit 0 with the head hash if intact, "
        "1 with the first bad seq",
    )
    verify.set_defaults(handler=verify_log)
    where = verify.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="DuckDB event log file (no engine may hold it open)")
    where.add_argument("--dsn", help="PostgreSQL connection string (with --stream)")
    where.add_argument("--config", help="YAML config: its storage section says which log")
    verify.add_argument(
        "--stream", default=None, help="PostgreSQL stream (book) to verify (default: 'default')"
    )
    verify.add_argument(
        "--batch-size",
        type=positive_int,
        default=50_000,
        help="events read per query (default 50,000)",
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object")


def verify_log(args: argparse.Namespace, out: TextIO) -> int:
    """Verify the log the arguments name; print the report; the exit status."""
    if args.stream is not None and args.dsn is None:
        raise PersistenceError("--stream goes with --dsn (a config names its own stream)")
    log = _open(args)
    try:
        report = log.verify_chain(batch_size=args.batch_size)
    finally:
        log.close()
    _print_report(report, log.path, out, as_json=args.json)
    return 0 if report.ok else 1


def _open(args: argparse.Namespace) -> Recorder:
    if args.config is not None:
        from engine.config import load_config

        storage = load_config(args.config).storage
        if storage.backend == "postgres":
            return _open_postgres(storage.postgres_dsn, storage.stream)
        return _open_duckdb(storage.db_path)
    if args.dsn is not None:
        return _open_postgres(args.dsn, args.stream or "default")
    return _open_duckdb(args.db)


def _open_duckdb(db: str) -> Recorder:
    _require_file(db)
    try:
        return EventLog(db).open()
    except PersistenceError as exc:
        if "held by another process" in str(exc):
            raise PersistenceError(
                f"cannot verify: {exc}; stop that engine first (DuckDB lets no other "
                "process read a file while an engine writes it)"
            ) from None
        raise


def _open_postgres(dsn: str, stream: str) -> Recorder:
    try:
        from persistence.pg import PostgresEventLog
    except ImportError as exc:
        raise PersistenceError(
            f"verifying a PostgreSQL log needs psycopg: pip install -e '.[scale]' ({exc})"
        ) from exc
    log: Recorder = PostgresEventLog(dsn, stream=stream).open()
    return log


def _print_report(report: ChainReport, where: str, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps({"log": where, **report.to_dict()}, sort_keys=True) + "\n")
        return
    if report.ok:
        out.write(
            f"event log {where}: intact, {report.events:,} events up to seq {report.last_seq}, "
            f"{report.snapshots_checked} snapshot chain head(s) match\n"
            f"chain head {report.head}\n"
        )
        return
    out.write(
        f"event log {where}: BROKEN at seq {report.first_bad_seq}: {report.reason}\n"
        f"{report.events:,} events verify before it (up to seq {report.last_seq}, "
        f"chain head there {report.head})\n"
    )
