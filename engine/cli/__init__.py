"""The ``seamless`` command line: demo, run, backtest, events, state, report, plugins (``serve`` is
added by ``panel_app.cli``, the console script, since the engine may not import the dashboard).

Every sub-command has ``--help``; bad arguments or files give a one-line error naming what is
wrong and a non-zero exit status (2 for usage, 1 for a failure), never a traceback.

This module builds the parser and runs the small commands itself; the others are in
:mod:`engine.cli.run` (``run``, ``backtest``), :mod:`engine.cli.eventlog` (``events``,
``state``, ``verify``), :mod:`engine.cli.optimize` and :mod:`engine.cli.walkforward` (with the
arguments they share in :mod:`engine.cli.search`). Each registers its parsers with the function
that runs them (``handler``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from streams.errors import SeamlessError

log = logging.getLogger("seamless")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="seamless", description="Seamless: a reactive, event-sourced trading engine."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="write a short session to a DuckDB log, restore it, print it"
    )
    demo.add_argument("--db", default="data/runtime/demo.duckdb", help="DuckDB file to (re)create")

    events = sub.add_parser("events", help="print events from an event log no engine holds open")
    events.add_argument("--db", required=True, help="DuckDB event log file")
    events.add_argument("--topic", help="topic pattern, e.g. 'fills.*' or 'data.>'")
    events.add_argument("--since", type=_non_negative, default=0, help="only events after this seq")
    events.add_argument("--limit", type=_non_negative, help="at most this many events")
    events.add_argument("--json", action="store_true", help="one JSON object per line")

    state = sub.add_parser("state", help="print the state restored from an event log")
    state.add_argument("--db", required=True, help="DuckDB event log file")
    state.add_argument("--at", type=_non_negative, help="state as of this seq (time travel)")
    state.add_argument("--json", action="store_true", help="print JSON")

    report = sub.add_parser(
        "report", help="write a standalone HTML tearsheet (Bokeh, opens offline) of a run's log"
    )
    report.add_argument("--db", required=True, help="DuckDB event log file (of a backtest or run)")
    report.add_argument("--out", help="HTML file to write (default: the --db path with .html)")

    hashing = sub.add_parser("hash-password", help="hash a password for access.users (asks twice)")
    hashing.add_argument("--method", choices=("scrypt", "pbkdf2_sha256"), default="scrypt")
    sub.add_parser(
        "new-api-token", help="make an API token and the hash to put in access.api_tokens"
    )

    plugins = sub.add_parser(
        "plugins", help="list installed plugins (strategies, feeds, ...) and whether each loads"
    )
    plugins.add_argument("--json", action="store_true", help="print one JSON list")

    _add_engine_commands(sub)
    return parser


def _add_engine_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from engine.cli import eventlog, optimize, run, walkforward

    run.add_commands(sub)
    optimize.add_command(sub)
    walkforward.add_command(sub)
    eventlog.add_verify_command(sub)


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, or an error naming the text."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


_non_negative = whole_number(0)
#: An argparse type for counts that must be at least 1 (trials, jobs, batch sizes).
positive_int = whole_number(1)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return _dispatch(args, out)
    except SeamlessError as exc:
        print(f"seamless {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "demo":
        from engine.demo import run_demo

        summary = run_demo(args.db, out)
        return 0 if summary["restore_equals_live"] and summary["restore_equals_full_replay"] else 1
    if args.command == "hash-password":
        return _hash_password(args.method, out)
    if args.command == "new-api-token":
        from engine.access import new_api_token

        token, token_hash = new_api_token()
        out.write(f"token (give to the client, shown once): {token}\n")
        out.write(f"hash (put under access.api_tokens):     {token_hash}\n")
        return 0
    if args.command == "events":
        from engine.cli.eventlog import show_events

        show_events(
            args.db, out, topic=args.topic, since=args.since, limit=args.limit, as_json=args.json
        )
        return 0
    if args.command == "state":
        from engine.cli.eventlog import show_state

        show_state(args.db, out, at=args.at, as_json=args.json)
        return 0
    if args.command == "report":
        from engine.research.report import write_report

        out.write(f"report written to {write_report(args.db, args.out)}\n")
        return 0
    if args.command == "plugins":
        from engine.plugins import write_plugins

        write_plugins(out, as_json=args.json)
        return 0
    # the commands of the other modules: the function each registered with its parser
    handler: Callable[[argparse.Namespace, TextIO], int] = args.handler
    return handler(args, out)


def _hash_password(method: str, out: TextIO) -> int:
    import getpass

    from engine.access import hash_password

    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        print("seamless hash-password: error: the two passwords differ", file=sys.stderr)
        return 1
    if len(first) < 8:
        print("seamless hash-password: error: use at least 8 characters", file=sys.stderr)
        return 1
    out.write(hash_password(first, method=method) + "\n")
    return 0
