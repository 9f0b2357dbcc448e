"""The benchmark suite and its command line: ``python -m bench NAME [OPTIONS] [--json]``.

``python -m bench`` (or ``--list``) lists the benchmarks with the first line of each one's
docstring; ``python -m bench NAME --help`` gives a benchmark's options. A benchmark is a module
of this package with a top-level ``main(argv)``; the list is read from the source files
(nothing is imported to list them, so listing is instant even where a benchmark needs Chromium
or PostgreSQL). Run from the repository root with the project installed (``pip install -e .``).

A benchmark's ``main(argv)`` builds its parser with :func:`bench_parser` and runs its
measurement through :func:`report`: the measurement prints its human-readable lines as it goes
and returns its figures as a dict. With ``--json`` those lines go to stderr and stdout carries
only the figures, as one JSON object (NaN and infinities as ``null``), for scripts and notes.
Modules without a top-level ``main`` are helpers the benchmarks share, not benchmarks.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def benchmarks() -> dict[str, str]:
    """Every benchmark's name and the first line of its module docstring, by name."""
    found: dict[str, str] = {}
    for path in sorted(HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            doc = (ast.get_docstring(tree) or "").strip()
            found[path.stem] = doc.splitlines()[0] if doc else ""
    return found


def print_list(known: dict[str, str]) -> None:
    """The usage line and one line per benchmark."""
    print("usage: python -m bench NAME [OPTIONS] [--json]   (python -m bench NAME --help)\n")
    width = max(len(name) for name in known)
    for name, line in known.items():
        print(f"  {name:<{width}}  {line}")


def dispatch(argv: list[str] | None = None) -> int:
    """Run ``bench.NAME.main(rest of argv)``; its return value is the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    known = benchmarks()
    if not args or args[0] in ("--list", "-l", "--help", "-h"):
        print_list(known)
        return 0
    name = args[0].replace("-", "_")
    if name not in known:
        print(
            f"python -m bench: unknown benchmark {args[0]!r}; expected one of: " + ", ".join(known),
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"bench.{name}")
    status = module.main(args[1:])
    return int(status or 0)


def bench_parser(name: str, doc: str | None, **numbers: float) -> argparse.ArgumentParser:
    """The parser of ``python -m bench NAME``: the module docstring as its help, ``--json``,
    and one option per keyword of ``numbers`` (``max_depth=20_000`` is ``--max-depth``, an
    int defaulting to 20000; a float default makes a float option). Options with a help text
    or another kind are added to the returned parser as usual."""
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
    for option, default in numbers.items():
        parser.add_argument("--" + option.replace("_", "-"), type=type(default), default=default)
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


def report(
    args: argparse.Namespace, measure: Callable[[argparse.Namespace], dict[str, Any]]
) -> dict[str, Any]:
    """Run ``measure(args)``; with ``args.json`` send what it prints to stderr and print its
    figures as one JSON object on stdout. Returns the figures."""
    if not args.json:
        return measure(args)
    with contextlib.redirect_stdout(sys.stderr):
        figures = measure(args)
    print(json.dumps(plain(figures)), flush=True)
    return figures
