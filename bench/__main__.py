"""Run one benchmark: ``python -m bench NAME [OPTIONS] [--json]``.

``python -m bench`` (or ``--list``) lists the benchmarks with the first line of each one's
docstring; ``python -m bench NAME --help`` gives a benchmark's options. A benchmark is a module
of this package with a top-level ``main(argv)``; the list is read from the source files
(nothing is imported to list them, so listing is instant even where a benchmark needs Chromium
or PostgreSQL). Run from the repository root with the project installed (``pip install -e .``).
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``bench.NAME.main(rest of argv)``; its return value is the exit status."""
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


if __name__ == "__main__":
    sys.exit(main())
