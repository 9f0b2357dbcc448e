"""What every benchmark shares: its command line (``--json``) and how its figures come out.

A benchmark's ``main(argv)`` builds its parser with :func:`bench_parser` and runs its
measurement through :func:`report`: the measurement prints its human-readable lines as it goes
and returns its figures as a dict. With ``--json`` those lines go to stderr and stdout carries
only the figures, as one JSON object (NaN and infinities as ``null``), for scripts and notes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Callable
from typing import Any


def bench_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m bench NAME``: the module docstring as its help, and ``--json``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bench {name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the figures as one JSON object on stdout (the usual lines go to stderr)",
    )
    return parser


def plain(value: Any) -> Any:
    """``value`` with tuples as lists, non-string keys as strings and NaN/inf as None, so that
    ``json.dumps`` writes strict JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report(as_json: bool, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``measure``; with ``as_json`` send what it prints to stderr and print its figures
    as one JSON object on stdout. Returns the figures."""
    if not as_json:
        return measure()
    with contextlib.redirect_stdout(sys.stderr):
        figures = measure()
    print(json.dumps(plain(figures)), flush=True)
    return figures
