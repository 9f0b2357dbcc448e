"""Lint, format and type checks run as part of the test command, so style never drifts."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LAYERS = {
    "streams": ("state", "persistence", "engine", "panel_app"),
    "state": ("persistence", "engine", "panel_app"),
    "persistence": ("engine", "panel_app"),
    "engine": ("panel_app",),
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_imports_flow_one_way() -> None:
    """DESIGN.md section 3: lower layers never import higher ones."""
    bad = []
    for package, forbidden in LAYERS.items():
        for file in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(file.read_text().splitlines(), 1):
                for upper in forbidden:
                    if re.match(rf"\s*(from|import)\s+{upper}(\.|\s|$)", line):
                        bad.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bad, "imports against the layer direction:\n" + "\n".join(bad)


TOPIC_PACKAGES = ("engine", "panel_app", "state", "persistence", "streams")
#: Calls whose arguments are topics or patterns (``bus.subscribe(pattern, ...)`` and kin).
TOPIC_CALLS = frozenset({"subscribe", "observe", "subscriber_count", "on_bus"})
#: Keyword arguments and names that hold a topic or pattern (``log.read(topic=...)``).
TOPIC_NAMES = frozenset({"topic", "pattern"})


def _topic_vocabulary() -> tuple[re.Pattern[str], frozenset[str]]:
    """What streams/topics.py defines: a regex for dotted topics/patterns, and the bare names.

    Dotted families come from the builders (``fills(x)`` -> ``fills``) and dotted constants
    (``ERRORS`` -> ``system``); bare names are the one-segment topics (``pnl``, ``risk``) and
    the whole-segment wildcards. A bare name is also a common word, so it counts only where a
    topic is expected (see :func:`_in_topic_position`); a dotted one counts anywhere.
    """
    from streams import topics

    families: set[str] = set()
    bare = {"*", ">", "**"}
    for name, value in vars(topics).items():
        if name.startswith("_"):
            continue
        if isinstance(value, str):
            root, dot, _ = value.partition(".")
            (families if dot else bare).add(value if not dot else root)
        elif callable(value) and getattr(value, "__module__", "") == topics.__name__:
            try:
                built = value("x")
            except TypeError:  # not a one-argument builder (e.g. ``matches``)
                continue
            if isinstance(built, str) and "." in built:
                families.add(built.partition(".")[0])
    segment = r"(?:[a-z0-9_\-]+|\*|>|\*\*)"
    roots = "|".join(sorted(re.escape(root) for root in families))
    return re.compile(rf"^(?:{roots})(?:\.{segment})+$"), frozenset(bare)


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _in_topic_position(tree: ast.AST) -> set[int]:
    """Ids of the nodes that stand where a topic or pattern is expected."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in TOPIC_CALLS:
                ids.update(id(arg) for arg in node.args)
            ids.update(id(kw.value) for kw in node.keywords if kw.arg in TOPIC_NAMES)
        elif isinstance(node, ast.Compare) and all(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            sides = [node.left, *node.comparators]
            named = [
                side.attr if isinstance(side, ast.Attribute) else getattr(side, "id", "")
                for side in sides
            ]
            if TOPIC_NAMES.intersection(named):
                ids.update(id(side) for side in sides)
    return ids


def topic_literals(source: str, dotted: re.Pattern[str], bare: frozenset[str]) -> list[int]:
    """Line numbers of string literals in ``source`` that are exactly a topic or a pattern.

    Docstrings and the fragments of f-strings are not literals of a topic; a bare name
    (``"pnl"``, ``">"``) counts only as a topic argument or compared with a ``topic``.
    """
    tree = ast.parse(source)
    skip = _docstring_ids(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
    positioned = _in_topic_position(tree)
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in skip:
            continue
        if dotted.match(node.value) or (node.value in bare and id(node) in positioned):
            lines.append(node.lineno)
    return sorted(lines)


def test_topic_detector_is_precise() -> None:
    """The detector flags topic literals and patterns, not state keys, names or prose."""
    dotted, bare = _topic_vocabulary()
    flagged = """
bus.subscribe("fills.*", on_fill)
bus.subscribe(">", on_any)
log.read(topic="data.bars.aapl")
b.on_bus(bus, "pnl", on_pnl)
if event.topic == "risk":
    pass
DEFAULT = ("system.errors",)
"""
    assert topic_literals(flagged, dotted, bare) == [2, 3, 4, 5, 6, 8]
    clean = '''
"""Subscribes to fills.* and data.bars.* for every symbol."""
state.get("pnl")
store.get_state("risk.limits")
bus.subscribe(topics.ALL_FILLS, on_fill, name="pnl.fills")
log.info("fills.* subscribed")
html = f'<div data-x="{x}">'
path = "state.json"
if "*" in event.topic:
    pass
'''
    assert topic_literals(clean, dotted, bare) == []


def test_topic_patterns_are_built_in_the_topics_module() -> None:
    """STYLE.md: topics are built only in streams/topics.py; elsewhere use its constants."""
    dotted, bare = _topic_vocabulary()
    bad = []
    for package in TOPIC_PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            if file == ROOT / "streams" / "topics.py":
                continue
            for number in topic_literals(file.read_text(), dotted, bare):
                line = file.read_text().splitlines()[number - 1].strip()
                bad.append(f"{file.relative_to(ROOT)}:{number}: {line}")
    assert not bad, "topic literals outside streams/topics.py:\n" + "\n".join(bad)
